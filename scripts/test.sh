#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every test
# (unit, proptest, integration with the real binary, crash kills, fuzz corpora).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
