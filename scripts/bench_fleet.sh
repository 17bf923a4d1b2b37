#!/usr/bin/env bash
# The fleet at scale (issue 26): a GCS emulator bucket with HOSTS hosts of
# ENTRIES snapshots each, built fast (examples/fleet_synth.rs copies one real
# host's objects under new store ids, with the catalogs a compaction leaves),
# then `snap fleet status` timed, its peak memory and its requests counted
# (by the permission proxy's log), and one host's `list` counted in that
# bucket and in a bucket holding that host alone.
#
# usage: [HOSTS=200] [ENTRIES=1000] scripts/bench_fleet.sh
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${HOSTS:-200}
ENTRIES=${ENTRIES:-1000}
EMULATOR=${SNAP_TEST_EMULATOR:-$PWD/.venv/bin/gcp-storage-emulator}
cargo build --quiet --release --bin snap --example fleet_synth
S=$PWD/target/release/snap
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The operator's key, and one real host with ENTRIES snapshots, mirrored
# every 50 into a file:// fleet bucket (the template of the others).
$S --store "$work/op" -q init >/dev/null
$S --store "$work/op" -q key generate --out "$work/id" >/dev/null 2>&1
$S --store "$work/host" -q init >/dev/null
mkdir -p "$work/host/mirror"
cp "$work/op/mirror/recipients" "$work/host/mirror/recipients"
mkdir -p "$work/data"
for i in $(seq 1 "$ENTRIES"); do
  echo "$i" > "$work/data/n"
  $S --store "$work/host" -q take "$work/data" >/dev/null
  if [ $((i % 50)) = 0 ]; then $S --store "$work/host" -q mirror --remote "file://$work/tpl" --fleet >/dev/null; fi
done
id=$(python3 -c "import json,sys; print(json.load(open('$work/host/config'))['store_id'])")

eport=$(free_port); pport=$(free_port)
(cd "$work" && exec "$EMULATOR" start --host 127.0.0.1 --port "$eport" --default-bucket snaptest -q >/dev/null 2>&1) &
pids+=($!)
GCS_IAM_LOG="$work/requests.log" python3 tests/proxy/gcs_iam.py "$pport" "$eport" "=create,get,list,delete" >/dev/null 2>&1 &
pids+=($!)
until python3 -c "import socket; socket.create_connection(('127.0.0.1', $pport))" 2>/dev/null; do sleep 0.2; done
sleep 1
export STORAGE_EMULATOR_HOST="http://127.0.0.1:$pport" SNAP_IDENTITY_FILE="$work/id"

# The real host in both buckets; HOSTS - 1 synthetic ones beside it in "big".
$S --store "$work/host" -q mirror --remote gs://snaptest/one --fleet >/dev/null
$S --store "$work/host" -q mirror --remote gs://snaptest/big --fleet >/dev/null
start=$(date +%s.%N)
target/release/examples/fleet_synth "$work/tpl/hosts/$id" gs://snaptest/big $((HOSTS - 1)) "$ENTRIES" "$work/op/mirror/recipients"
echo "built in $(python3 -c "print(round($(date +%s.%N) - $start, 1))") s"

count() { : > "$work/requests.log"; "$@" > "$work/out" 2> "$work/err"; rc=$?; wc -l < "$work/requests.log"; return 0; }
n=$(count /usr/bin/time -v $S --store "$work/none" --json fleet status --remote gs://snaptest/big)
wall=$(grep "Elapsed (wall" "$work/err" | awk '{print $NF}')
rss=$(grep "Maximum resident" "$work/err" | awk '{print $NF}')
hosts=$(python3 -c "import json; print(len(json.load(open('$work/out'))['hosts']))")
echo "fleet status: $hosts hosts, $n requests ($(python3 -c "print(round($n / $hosts, 2))") a host), $wall wall, $((rss / 1024)) MiB peak"
for b in one big; do
  n=$(count $S --store "$work/none" --json list --remote gs://snaptest/$b --fleet --host "$id")
  k=$(python3 -c "import json; print(len(json.load(open('$work/out'))))")
  echo "list --host of the real host in '$b': $k snapshots, $n requests"
done
