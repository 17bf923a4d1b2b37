#!/usr/bin/env bash
# Page units: first take and one churn day of the public ~1 GB `npm1g`
# database at 1, 4, 16 and 64 pages per unit (DESIGN.md, "Page units"):
# take times, bytes added, index size, chunks. Usage: scripts/units_sweep.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
SNAP=$PWD/target/release/snap
BENCH=$(cd ../shared/bench && pwd)
W=${1:-${TMPDIR:-/tmp}/snap-units}
mkdir -p "$W/src"
trap 'rm -rf "$W"' EXIT
python3 "$BENCH/npm_db.py" build "$BENCH/data/npm.tsv.zst" "$W/day0.db" --repeat 24 > /dev/null
cp "$W/day0.db" "$W/day1.db" && python3 "$BENCH/npm_db.py" churn "$W/day1.db" 1
echo "| pages per unit | first take | churn day take | day 1 added | index after day 1 | chunks per image |"
echo "|---:|---:|---:|---:|---:|---:|"
for pages in 1 4 16 64; do
  export SNAP_BENCH_UNIT_BYTES=$((pages * 4096))
  rm -rf "$W/store" && "$SNAP" --store "$W/store" init > /dev/null
  cp "$W/day0.db" "$W/src/npm.db"
  s=$(date +%s.%N); "$SNAP" --store "$W/store" take "$W/src/npm.db" > /dev/null; e=$(date +%s.%N)
  first=$(echo "$e - $s" | bc)
  cp "$W/day1.db" "$W/src/npm.db"
  s=$(date +%s.%N); out=$("$SNAP" --store "$W/store" --json take "$W/src/npm.db"); e=$(date +%s.%N)
  daily=$(echo "$e - $s" | bc)
  added=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"]["added"])')
  chunks=$("$SNAP" --store "$W/store" --json list | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[-1]["databases"][0]["page_count"])' 2>/dev/null || echo "?")
  index=$(stat -c %s "$W/store/index.redb")
  printf "| %d | %.2f s | %.2f s | %.1f MB | %.1f MB | %d |\n" "$pages" "$first" "$daily" \
    "$(echo "$added / 1000000" | bc -l)" "$(echo "$index / 1000000" | bc -l)" "$(( (${chunks/\?/0} + pages - 1) / pages ))"
done
