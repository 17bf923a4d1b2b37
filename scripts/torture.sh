#!/usr/bin/env bash
# The long kill campaign (outside CI): 1,000+ random SIGKILLs across take (files
# and a live WAL database with a writer running), gc with repack, mirror, clone
# and repair index, on a release build. After every kill the store must verify
# and every completed snapshot must restore bit for bit against its reference;
# the last line prints the counts. Then the model-based test with many cases.
#   KILLS=1000 CASES=500 scripts/torture.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SNAP_TORTURE_KILLS="${KILLS:-1000}" cargo test --release --test torture -- --nocapture 2>&1 |
  grep -E "kill campaign|test result|panicked"
PROPTEST_CASES="${CASES:-500}" cargo test --release --test model 2>&1 | grep -E "test result|panicked|minimal"
SNAP_POWER_CUTS="${CUTS:-400}" cargo test --release --test power_loss -- --nocapture 2>&1 |
  grep -E "power cuts|test result|panicked"
