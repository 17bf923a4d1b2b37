#!/usr/bin/env bash
# snap mount against snap restore on one large file (issue 27): each pair
# drops the page cache, restores the file (--to, fsynced), drops it again,
# mounts and reads the same file through FUSE with cat; prints each pair's
# seconds, the mount's peak RSS and the throughput ratio mount / restore.
# Needs root (drop_caches, FUSE). With DB=PATH it instead mounts a store
# holding that database and reads it through the mount twice (cat, then a
# full-scan sqlite3 query), printing the mount's peak RSS.
# With ENTRIES=N it snapshots a directory of N small files and times
# listing it through a fresh mount (ls -f, then ls -l, which looks up each).
# Usage: scripts/bench_mount.sh SNAP_BIN [SIZE_MB] [PAIRS]
set -euo pipefail
snap=$(realpath "$1"); size=${2:-1000}; pairs=${3:-5}
work=$(mktemp -d /tmp/snap-mount-bench.XXXX)
cleanup() { umount -l "$work/mnt" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/data" "$work/mnt"
export SNAP_STORE=$work/store
now() { date +%s.%N; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
mounted() {
  "$snap" mount "$work/mnt" -q & pid=$!
  for _ in $(seq 200); do [ -e "$work/mnt/latest" ] && return; sleep 0.05; done
  echo "the mount did not come up" >&2; exit 1
}
unmount() { kill -INT "$pid"; wait "$pid"; }
peak() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$pid/status"; }

if [ -n "${ENTRIES:-}" ]; then
  mkdir "$work/data/many"
  python3 -c "
import sys
for i in range($ENTRIES): open(f'$work/data/many/f{i:07d}', 'w').write(str(i))"
  "$snap" take -q "$work/data" >/dev/null
  rm -rf "$work/data/many"
  drop; mounted
  t0=$(now); n=$(ls -f "$work/mnt/latest/data/many" | wc -l); t1=$(now)
  echo "ls -f of $n entries through a fresh mount: $(echo "$t1 - $t0" | bc) s"
  t0=$(now); ls -l "$work/mnt/latest/data/many" > /dev/null; t1=$(now)
  echo "ls -l of the same (warm): $(echo "$t1 - $t0" | bc) s, mount peak RSS $(peak) MiB"
  unmount
  exit 0
fi

if [ -n "${DB:-}" ]; then
  name=$(basename "$DB")
  ln "$DB" "$work/data/$name" 2>/dev/null || cp "$DB" "$work/data/$name"
  t0=$(now); "$snap" take -q "$work/data" >/dev/null; t1=$(now)
  echo "took $(du -b "$DB" | cut -f1) bytes in $(echo "$t1 - $t0" | bc) s"
  rm "$work/data/$name"
  drop; mounted
  t0=$(now); cat "$work/mnt/latest/data/$name" > /dev/null; t1=$(now)
  echo "cat through the mount: $(echo "$t1 - $t0" | bc) s, mount peak RSS $(peak) MiB"
  t0=$(now)
  sqlite3 -readonly "$work/mnt/latest/data/$name" "SELECT count(*), sum(length(v)) FROM items" > /dev/null
  t1=$(now)
  echo "full-scan query through the mount: $(echo "$t1 - $t0" | bc) s, mount peak RSS $(peak) MiB"
  unmount
  exit 0
fi

# Half incompressible, half text-like: what zstd meets in real data.
python3 - "$work/data/file.bin" "$size" <<'PY'
import os, random, sys
rnd, words = random.Random(7), [b"alpha ", b"beta ", b"gamma ", b"delta\n", b"snap ", b"store "]
with open(sys.argv[1], "wb") as f:
    for i in range(int(sys.argv[2])):
        f.write(os.urandom(1 << 20) if i % 2 else b"".join(rnd.choice(words) for _ in range(180000))[: 1 << 20])
PY
"$snap" take -q "$work/data" >/dev/null
rm "$work/data/file.bin"
echo "pair restore_s mount_cat_s mount_peak_MiB mount/restore_throughput"
for i in $(seq "$pairs"); do
  drop
  t0=$(now); "$snap" restore latest --to "$work/out" -q >/dev/null; t1=$(now)
  rm -rf "$work/out"
  drop; mounted
  t2=$(now); cat "$work/mnt/latest/data/file.bin" > /dev/null; t3=$(now)
  p=$(peak); unmount
  r=$(echo "$t1 - $t0" | bc); m=$(echo "$t3 - $t2" | bc)
  echo "$i $r $m $p $(echo "scale=2; $r / $m" | bc)"
done
