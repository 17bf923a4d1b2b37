# In Alembic's env.py, before context.run_migrations(): snapshot the database
# first. A fresh checkout has no database yet: --allow-missing makes that a
# no-op instead of a failed migration.
import subprocess

subprocess.run(
    ["snap", "take", "app.db", "--tag", "pre-migration", "--allow-missing"],
    check=True,
)
