#!/usr/bin/env bash
# Mirror figures for the README: a ~1 GiB store mirrored to the GCS emulator
# and to a file:// remote (time, throughput), an incremental mirror after one
# day of 1 % churn on the public `npm` workload (objects and bytes), and clone
# time. Usage: scripts/bench_mirror.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
SNAP=$PWD/target/release/snap
W=${1:-${TMPDIR:-/tmp}/snap-bench-mirror}
BENCH=$(cd ../shared/bench && pwd)
rm -rf "$W" && mkdir -p "$W/data" "$W/emu"
[ -x .venv/bin/gcp-storage-emulator ] || { python3 -m venv .venv && .venv/bin/pip install -q gcp-storage-emulator; }
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$W/emu" && exec "$OLDPWD/.venv/bin/gcp-storage-emulator" start --host 127.0.0.1 --port "$PORT" --default-bucket bench -q) &
EMU=$!
trap 'kill $EMU 2>/dev/null || true; rm -rf "$W"' EXIT
export STORAGE_EMULATOR_HOST=http://127.0.0.1:$PORT
until curl -s "$STORAGE_EMULATOR_HOST/storage/v1/b" > /dev/null; do sleep 0.2; done
# ~1 GiB of packs: 64 x 16 MiB of random data (stored as is) and 8 x 16 MiB of logs (~8x smaller).
for i in $(seq 1 64); do head -c 16M /dev/urandom > "$W/data/blob-$i.bin"; done
for i in $(seq 1 8); do python3 scripts/gen_text.py "$W/data/log-$i.txt" $((16 << 20)) "$i"; done
"$SNAP" --store "$W/store" init > /dev/null
"$SNAP" --store "$W/store" take "$W/data" > /dev/null
echo "store: $(du -sb "$W/store/packs" | cut -f1) bytes of packs"
# What sealing costs: the same store mirrored and restored (--remote, ranged
# reads) plaintext and sealed (age), to file:// and the emulator, REPS pairs
# in alternation; medians. A fresh remote and fresh mirror state each time.
seal_cost() {
  cp -a "$W/store" "$W/plainstore"
  "$SNAP" --store "$W/store" key generate --out "$W/identity" 2> /dev/null
  local reps=${REPS:-3} kind s e
  for r in $(seq 1 "$reps"); do
    for kind in plain sealed; do
      local store=$W/store url flag=()
      [ $kind = plain ] && { store=$W/plainstore; flag=(--plaintext); }
      for remote in "file://$W/r-$kind" "gs://bench/r-$kind-$r"; do
        rm -rf "$W/r-$kind" "$store/mirror/"*/ "$W/out-$kind"
        s=$(date +%s.%N); "$SNAP" --store "$store" mirror "${flag[@]}" --remote "$remote" > /dev/null; e=$(date +%s.%N)
        echo "mirror ${remote%%:*} $kind $(echo "$e - $s" | bc)" >> "$W/seal.txt"
        s=$(date +%s.%N)
        "$SNAP" --identity "$W/identity" --store "$W/none" restore latest --remote "$remote" --to "$W/out-$kind" > /dev/null
        e=$(date +%s.%N)
        echo "restore ${remote%%:*} $kind $(echo "$e - $s" | bc)" >> "$W/seal.txt"
        rm -rf "$W/out-$kind"
      done
    done
  done
  python3 - "$W/seal.txt" <<'PY'
import sys, statistics, collections
t = collections.defaultdict(list)
for line in open(sys.argv[1]):
    op, remote, kind, secs = line.split()
    t[(op, remote, kind)].append(float(secs))
for op in ("mirror", "restore"):
    for remote in ("file", "gs"):
        p, s = statistics.median(t[(op, remote, "plain")]), statistics.median(t[(op, remote, "sealed")])
        print(f"{op:8} {remote:5} plaintext {p:6.2f} s  sealed {s:6.2f} s  sealed/plain {s / p:5.2f}x")
PY
  rm -rf "$W/plainstore" "$W/r-plain" "$W/r-sealed"
}
if [ "${ONLY:-}" = seal ]; then seal_cost; exit 0; fi
t() { local label=$1; shift; local s; s=$(date +%s.%N); "$@" > "$W/out"; printf '%-44s %6.2f s  %s\n' "$label" "$(echo "$(date +%s.%N) - $s" | bc)" "$(tail -1 "$W/out")"; }
seal_cost
export SNAP_IDENTITY_FILE=$W/identity
t "mirror the store -> GCS emulator" "$SNAP" --store "$W/store" mirror --remote gs://bench/snap
t "mirror the store -> file:// remote" "$SNAP" --store "$W/store" mirror --remote "file://$W/fsremote"
t "mirror again, nothing new (emulator)" "$SNAP" --store "$W/store" mirror --remote gs://bench/snap
t "clone from the emulator" "$SNAP" --store "$W/clone" clone --remote gs://bench/snap
t "clone from file://" "$SNAP" --store "$W/clone2" clone --remote "file://$W/fsremote"
rm -rf "$W/clone" "$W/clone2"
# One day of the npm workload's 1 % churn, then an incremental mirror.
mkdir -p "$W/npm"
python3 "$BENCH/npm_db.py" build "$BENCH/data/npm.tsv.zst" "$W/npm/npm.db" > /dev/null
"$SNAP" --store "$W/npmstore" init > /dev/null
"$SNAP" --store "$W/npmstore" key generate --out "$W/npm-identity" 2> /dev/null
"$SNAP" --store "$W/npmstore" take "$W/npm" > /dev/null
"$SNAP" --store "$W/npmstore" mirror --remote gs://bench/npm > /dev/null
python3 "$BENCH/npm_db.py" churn "$W/npm/npm.db" 1 > /dev/null
"$SNAP" --store "$W/npmstore" take "$W/npm" > /dev/null
t "incremental mirror after 1 % churn (npm)" "$SNAP" --store "$W/npmstore" mirror --remote gs://bench/npm
