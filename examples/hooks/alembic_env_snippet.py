# In Alembic's env.py, in run_migrations_online() just before
# context.run_migrations() (not at the top of the file, which `alembic
# current` and `alembic history` run too): snapshot the database first. A
# fresh checkout has no database yet: --allow-missing makes that a no-op
# instead of a failed migration.
import os
import subprocess

# SNAP_BIN names snapdb's `snap` when another one (Ubuntu's package
# manager) comes first on PATH; check it is ours before running it.
snap = os.environ.get("SNAP_BIN", "snap")
version = subprocess.run([snap, "--version"], capture_output=True, text=True).stdout
if "snapdb" not in version:
    raise SystemExit(f"{snap} is not snapdb's snap; set SNAP_BIN to its path")
subprocess.run(
    [snap, "take", "app.db", "--tag", "pre-migration", "--allow-missing"],
    check=True,
)
