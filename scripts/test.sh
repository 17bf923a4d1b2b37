#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every test
# (unit, proptest, golden, integration with the real binary, crash and kill
# tests, the model-based and power-loss tests, a short kill campaign, the
# README's stories, fuzz corpora, and the mirror tests against a real GCS JSON-API
# emulator, `gcp-storage-emulator` from PyPI, installed here into .venv; each
# mirror test starts its own emulator on a free 127.0.0.1 port and stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
# S3 and Azure Blob remotes are tested against `moto` (PyPI, with boto3 to
# make the bucket) and `azurite` (npm, installed locally under .ci/node, with
# `azure-storage-blob` from PyPI to make the container).
if [ ! -x .venv/bin/gcp-storage-emulator ] || [ ! -x .venv/bin/moto_server ] \
  || ! .venv/bin/python -c "import boto3, azure.storage.blob, libfaketime" 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check \
    gcp-storage-emulator "moto[server]" boto3 azure-storage-blob libfaketime
fi
# Debian packages the tests run: npm (for azurite), and the sqlite3 and tar
# command lines (the mount and dump tests query and extract with them).
apt_install() {
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "$@"; \
  else sudo -n apt-get update -qq && sudo -n apt-get install -y -qq "$@"; fi
}
missing=()
command -v npm >/dev/null || [ -x .ci/node/node_modules/.bin/azurite-blob ] || missing+=(nodejs npm)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v tar >/dev/null || missing+=(tar)
command -v ip >/dev/null || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
if [ ! -x .ci/node/node_modules/.bin/azurite-blob ]; then
  (cd .ci/node && npm ci --no-audit --no-fund --silent)
fi
# `snap mount` is tested with the kernel's FUSE: the test machines run as
# root with /dev/fuse (tests/mount.rs fails, saying so, where it is missing).
export SNAP_TEST_EMULATOR="$PWD/.venv/bin/gcp-storage-emulator"
export SNAP_TEST_MOTO="$PWD/.venv/bin/moto_server"
export SNAP_TEST_AZURITE="$PWD/.ci/node/node_modules/.bin/azurite-blob"
export SNAP_TEST_PYTHON="$PWD/.venv/bin/python"
# The fleet test runs one host three hours behind with libfaketime (PyPI
# `libfaketime` ships the preload library), and its hosts in network
# namespaces (`ip netns`, as root).
SNAP_TEST_FAKETIME="$(.venv/bin/python -c 'import libfaketime, os; print(os.path.join(os.path.dirname(libfaketime.__file__), "vendor/libfaketime/src/libfaketime.so.1"))')"
export SNAP_TEST_FAKETIME
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets --no-fail-fast
# The library from another crate, with none of this checkout's configuration:
# the crate is copied out of the tree (so its .cargo/config.toml is not
# found), with this checkout's Cargo.lock, and takes, restores and verifies.
root=$PWD
user=$(mktemp -d)
trap 'rm -rf "$user"' EXIT
cp -r .ci/library-user/. "$user/"
cp Cargo.lock "$user/"
sed -i "s|SNAP_PATH|$root|" "$user/Cargo.toml"
(cd "$user" && CARGO_TARGET_DIR="$root/target/library-user" cargo run --quiet)
