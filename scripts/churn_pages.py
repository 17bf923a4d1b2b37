#!/usr/bin/env python3
"""Where a day of the npm churn's bytes go, page by page: for each
transaction of ../shared/bench/npm_db.py's day 1, the pages it changes, the
units (64 KiB) they fall in, the pages that are verbatim copies of pages
elsewhere in the previous image, the pages appended, and what they cost
compressed alone and as a delta against the page at the same place (zlib,
4 KiB pages); then, for the insert transaction, the FTS5 data pages alone
and against the whole old FTS data (`zstd --patch-from`).
Usage: scripts/churn_pages.py NPM_DB WORKDIR"""
import hashlib, os, sqlite3, subprocess, sys, zlib
from churn_steps import day_one

npm, work = sys.argv[1], sys.argv[2]
steps = [[img[i:i + 4096] for i in range(0, len(img), 4096)] for img in day_one(npm, work)]
for k, (prev, cur) in enumerate(zip(steps, steps[1:])):
    where = {hashlib.sha1(p).digest(): i for i, p in enumerate(prev)}
    changed = [i for i in range(len(cur)) if i >= len(prev) or cur[i] != prev[i]]
    moved = sum(hashlib.sha1(cur[i]).digest() in where for i in changed)
    appended = sum(i >= len(prev) for i in changed)
    alone = sum(len(zlib.compress(cur[i], 6)) for i in changed)
    delta = 0
    for i in changed:
        if i < len(prev):
            co = zlib.compressobj(6, zdict=prev[i])
            delta += len(co.compress(cur[i]) + co.flush())
        else:
            delta += len(zlib.compress(cur[i], 6))
    print(f"transaction {k}: {len(changed)} pages changed in {len(set(i // 16 for i in changed))} units, "
          f"{moved} verbatim from elsewhere, {appended} appended; alone {alone // 1024} KiB, "
          f"against the same place {delta // 1024} KiB")


def owners(img, path):
    open(path, "wb").write(b"".join(img))
    return {r[1]: r[0] for r in sqlite3.connect(path).execute("SELECT name, pageno FROM dbstat")}


big = max(range(1, len(steps)), key=lambda k: sum(a != b for a, b in zip(steps[k - 1], steps[k])) + len(steps[k]) - len(steps[k - 1]))
prev, cur = steps[big - 1], steps[big]
new_own, old_own = owners(cur, os.path.join(work, "n.db")), owners(prev, os.path.join(work, "o.db"))
fts = "packages_fts_data"
new = b"".join(cur[i] for i in range(len(cur)) if (i >= len(prev) or cur[i] != prev[i]) and new_own.get(i + 1) == fts)
old = b"".join(prev[i] for i in range(len(prev)) if old_own.get(i + 1) == fts)
open(os.path.join(work, "new"), "wb").write(new)
open(os.path.join(work, "old"), "wb").write(old)
size = lambda cmd: len(subprocess.run(cmd, capture_output=True, cwd=work).stdout)
print(f"transaction {big - 1}: {len(new) // 4096} FTS data pages written; zstd -19 alone "
      f"{size(['zstd', '-19', '-c', 'new'])} B, against the old FTS data "
      f"{size(['zstd', '-19', '--long=27', '--patch-from=old', '-c', 'new'])} B")
