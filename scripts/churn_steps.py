"""The npm churn's day 1 (../shared/bench/npm_db.py), image by image: the
database's bytes before it and after each of its transactions. Shared by
scripts/churn_pages.py and scripts/multi_base.py."""
import importlib.util, os, shutil, sqlite3


def day_one(npm, work):
    """A copy of `npm` in `work` taken through day 1 of the churn; returns
    its image before and after each COMMIT (WAL checkpointed first)."""
    os.makedirs(work, exist_ok=True)
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "..", "shared", "bench", "npm_db.py")
    spec = importlib.util.spec_from_file_location("npm_db", path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    db = os.path.join(work, "a.db")
    shutil.copy(npm, db)

    def image():
        c = sqlite3.connect(db)
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        c.close()
        return open(db, "rb").read()

    steps, opened = [image()], m.open_db

    class Stepped:
        def __init__(self, c): self.c = c
        def execute(self, sql, *a):
            r = self.c.execute(sql, *a)
            if sql == "COMMIT":
                steps.append(image())
            return r
        def __getattr__(self, n): return getattr(self.c, n)

    m.open_db = lambda p: Stepped(opened(p))
    m.churn(db, 1)
    return steps
