#!/usr/bin/env bash
# Upgrade guard-rail: snapshot the data directory, run the upgrade, and roll
# the data back if the upgrade fails. The rollback first snapshots what the
# failed upgrade left (tag pre-restore), so it can itself be undone.
# Usage: upgrade.sh DATA_DIR UPGRADE_COMMAND...
set -euo pipefail
data=$1; shift
id=$(snap take "$data" --tag pre-upgrade --id-only)
echo "snapshot before upgrade: $id"
if ! "$@"; then
  echo "upgrade failed: rolling $data back to $id" >&2
  snap restore "$id" --in-place
  exit 1
fi
