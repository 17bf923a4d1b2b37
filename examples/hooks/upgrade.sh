#!/usr/bin/env bash
# Upgrade guard-rail: snapshot the data directory, run the upgrade, and roll
# the data back if the upgrade fails. The rollback first snapshots what the
# failed upgrade left (tag pre-restore), so it can itself be undone.
# Usage: upgrade.sh DATA_DIR UPGRADE_COMMAND...
# SNAP_BIN names snapdb's `snap` when another one comes first on PATH.
set -euo pipefail
snap=${SNAP_BIN:-snap}
# Ubuntu's package manager is also `snap` (and has a `restore` command):
# never let this script run it by accident.
case "$("$snap" --version 2>/dev/null || true)" in
  *snapdb*) ;;
  *) echo "upgrade.sh: '$snap' is not snapdb's snap; set SNAP_BIN to its path" >&2; exit 2 ;;
esac
data=$1; shift
id=$("$snap" take "$data" --tag pre-upgrade --id-only)
echo "snapshot before upgrade: $id"
if ! "$@"; then
  echo "upgrade failed: rolling $data back to $id" >&2
  "$snap" restore "$id" --in-place
  exit 1
fi
