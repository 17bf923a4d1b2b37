#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every test
# (unit, proptest, golden, integration with the real binary, crash and kill
# tests, the model-based and power-loss tests, a short kill campaign, the
# README's stories, fuzz corpora, and the mirror tests against a real GCS JSON-API
# emulator, `gcp-storage-emulator` from PyPI, installed here into .venv; each
# mirror test starts its own emulator on a free 127.0.0.1 port and stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/gcp-storage-emulator ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check gcp-storage-emulator
fi
export SNAP_TEST_EMULATOR="$PWD/.venv/bin/gcp-storage-emulator"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
