#!/usr/bin/env bash
# The public ~1 GB `npm1g` database on days 0-3 of its churn, taken by one
# or more snap binaries in turn (alternating, REPS times): each take's time,
# bytes added, index size and packs size, then the restore of day 3 (checked
# byte for byte), then a gc keeping the last two takes (a repack of the
# first two days' packs). How DESIGN.md "Delta chains" compared format 1
# and 2, and how the store's refactors are timed before and after.
# Usage: scripts/bench_db_days.sh SNAP_BIN [SNAP_BIN ...]   (env: REPS=2, WORKDIR)
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=$(cd ../shared/bench && pwd)
W=${WORKDIR:-${TMPDIR:-/tmp}/snap-db-days}
mkdir -p "$W"
trap 'rm -rf "$W"' EXIT
python3 "$BENCH/npm_db.py" build "$BENCH/data/npm.tsv.zst" "$W/day0.db" --repeat 24 > /dev/null
for d in 1 2 3; do
  cp "$W/day$((d - 1)).db" "$W/day$d.db"
  python3 "$BENCH/npm_db.py" churn "$W/day$d.db" "$d"
  python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.close()" "$W/day$d.db"
done
now() { date +%s.%N; }
for rep in $(seq "${REPS:-2}"); do
  for bin in "$@"; do
    S=$W/store; SRC=$W/src; OUT=$W/out
    rm -rf "$S" "$SRC" "$OUT"; mkdir -p "$SRC"
    "$bin" --store "$S" init > /dev/null
    line="$bin"
    for d in 0 1 2 3; do
      cp "$W/day$d.db" "$SRC/npm.db"
      s=$(now); "$bin" --store "$S" --json take "$SRC" > "$W/take.json"; e=$(now)
      added=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["stats"]["added"] / 1e6, 1))' "$W/take.json")
      line="$line | day $d: $(printf %.2f "$(echo "$e - $s" | bc)") s, $added MB, index $(( $(stat -c %s "$S/index.redb") / 1000 )) kB, packs $(( $(du -sb "$S/packs" | cut -f1) / 1000000 )) MB"
    done
    s=$(now); "$bin" --store "$S" restore latest --to "$OUT" > /dev/null; e=$(now)
    cmp -s "$OUT/src/npm.db" "$W/day3.db" && ok=identical || ok=DIFFERENT
    line="$line | restore $(printf %.2f "$(echo "$e - $s" | bc)") s, $ok"
    s=$(now); "$bin" --store "$S" gc --keep-last 2 > /dev/null; e=$(now)
    echo "$line | gc $(printf %.2f "$(echo "$e - $s" | bc)") s, packs $(( $(du -sb "$S/packs" | cut -f1) / 1000000 )) MB"
  done
done
