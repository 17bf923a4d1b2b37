#!/usr/bin/env bash
# End-to-end figures for the README: take of 1 GiB of new mixed data (half
# compressible text, half random), an unchanged re-take, restore, and peak
# memory in an empty store and in one already holding ~10 GiB.
# Usage: scripts/bench.sh [WORKDIR]   (needs ~25 GB free; takes a few minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
SNAP=$PWD/target/release/snap
W=${1:-${TMPDIR:-/tmp}/snap-bench}
rm -rf "$W" && mkdir -p "$W/data/text" "$W/data/random"
for i in $(seq 1 32); do
  python3 scripts/gen_text.py "$W/data/text/log-$i.txt" $((16 << 20)) "$i"
  head -c 16M /dev/urandom > "$W/data/random/blob-$i.bin"
done
sync
measure() { # label, command...: prints "label seconds peak-MiB"
  local label=$1; shift
  sync; sleep 1   # start each step with no writeback of the previous one in flight
  /usr/bin/time -f "%e %M" -o "$W/time" "$@" > "$W/out" 2>&1 || { cat "$W/out"; exit 1; }
  read -r secs kib < "$W/time"
  printf '%-40s %8.2f s %8.1f MiB peak\n' "$label" "$secs" "$(echo "$kib/1024" | bc -l)"
}
MB=$(du -sb "$W/data" | cut -f1)
echo "input: $((MB / 1048576)) MiB"
"$SNAP" --store "$W/store" init > /dev/null
measure "take 1 GiB new (empty store)" "$SNAP" --store "$W/store" take "$W/data"
measure "take 1 GiB unchanged" "$SNAP" --store "$W/store" take "$W/data"
measure "restore 1 GiB" "$SNAP" --store "$W/store" restore latest --to "$W/restore"
diff -r "$W/data" "$W/restore/data" && echo "restore: identical"
rm -rf "$W/restore"
echo "store: $(du -sb "$W/store" | cut -f1) bytes"
# Grow the store to ~10 GiB of distinct data, then take new data again.
mkdir -p "$W/grow"
for i in $(seq 1 9); do
  head -c 1G /dev/urandom > "$W/grow/g.bin"
  "$SNAP" --store "$W/store" take "$W/grow" > /dev/null
done
echo "store grown to: $(du -sb "$W/store" | cut -f1) bytes"
for i in $(seq 1 32); do head -c 16M /dev/urandom > "$W/data/random/blob-$i.bin"; done
measure "take 512 MiB new (10 GiB store)" "$SNAP" --store "$W/store" take "$W/data"
measure "take unchanged (10 GiB store)" "$SNAP" --store "$W/store" take "$W/data"
measure "restore 1 GiB (10 GiB store)" "$SNAP" --store "$W/store" restore latest --to "$W/restore"
measure "verify (10 GiB store, metadata)" "$SNAP" --store "$W/store" verify
rm -rf "$W"
