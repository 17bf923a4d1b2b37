#!/usr/bin/env bash
# gc figures for the README: a store with 1,000 snapshots (every 6 hours, via
# --time) of a ~200 MB data directory that changes between snapshots (one
# 1 MiB file rewritten, a log appended, a live SQLite database updated), then
# `snap gc --keep-daily 30 --keep-weekly 8 --keep-monthly 6`: time and peak memory.
# Usage: scripts/bench_gc.sh [WORKDIR] [SNAPSHOTS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
SNAP=$PWD/target/release/snap
W=${1:-${TMPDIR:-/tmp}/snap-bench-gc}
N=${2:-1000}
rm -rf "$W" && mkdir -p "$W/data/blobs" "$W/data/logs"
for i in $(seq 1 96); do head -c 2M /dev/urandom > "$W/data/blobs/b$i.bin"; done
python3 scripts/gen_text.py "$W/data/logs/app.log" $((8 << 20)) 1
python3 - "$W/data/app.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); c.execute("PRAGMA journal_mode=wal")
c.execute("CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT)")
c.executemany("INSERT INTO kv VALUES (?, ?)", ((k, "x" * 200) for k in range(20000))); c.commit()
PY
echo "data: $(du -sb "$W/data" | cut -f1) bytes"
"$SNAP" --store "$W/store" init > /dev/null
start=$(date +%s)
for i in $(seq 0 $((N - 1))); do
  head -c 1M /dev/urandom > "$W/data/blobs/b$((i % 96 + 1)).bin"
  head -c 100000 /dev/urandom | base64 >> "$W/data/logs/app.log"
  python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executemany('UPDATE kv SET v=? WHERE k=?', ((str($i)*50, ($i*37+j*101)%20000) for j in range(100))); c.commit()" "$W/data/app.db"
  t=$(date -u -d "2026-01-01T00:00:00Z + $((i * 6)) hours" +%Y-%m-%dT%H:%M:%SZ)
  "$SNAP" --store "$W/store" take "$W/data" --time "$t" > /dev/null
done
echo "$N snapshots in $(( $(date +%s) - start )) s; store $(du -sb "$W/store" | cut -f1) bytes"
sync; sleep 1
/usr/bin/time -f "gc: %e s, peak %M KiB" "$SNAP" --store "$W/store" gc --keep-daily 30 --keep-weekly 8 --keep-monthly 6 > "$W/gc.out"
tail -1 "$W/gc.out"
echo "store after gc: $(du -sb "$W/store" | cut -f1) bytes, $("$SNAP" --store "$W/store" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') snapshots"
/usr/bin/time -f "verify --read-data: %e s, peak %M KiB" "$SNAP" --store "$W/store" verify --read-data | tail -1
rm -rf "$W"
