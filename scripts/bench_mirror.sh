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
t() { local label=$1; shift; local s; s=$(date +%s.%N); "$@" > "$W/out"; printf '%-44s %6.2f s  %s\n' "$label" "$(echo "$(date +%s.%N) - $s" | bc)" "$(tail -1 "$W/out")"; }
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
"$SNAP" --store "$W/npmstore" take "$W/npm" > /dev/null
"$SNAP" --store "$W/npmstore" mirror --remote gs://bench/npm > /dev/null
python3 "$BENCH/npm_db.py" churn "$W/npm/npm.db" 1 > /dev/null
"$SNAP" --store "$W/npmstore" take "$W/npm" > /dev/null
t "incremental mirror after 1 % churn (npm)" "$SNAP" --store "$W/npmstore" mirror --remote gs://bench/npm
