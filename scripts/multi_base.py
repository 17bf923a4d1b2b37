#!/usr/bin/env python3
"""How much several delta bases would save on the npm churn's biggest
transaction (the FTS5 merge that `churn_pages.py` finds): each 64 KiB unit
the transaction changes is compressed (`zstd -1 --patch-from`, snap's delta
level) against its previous version alone (what snap stores today), and
against its previous version plus the k old units that share the most
64-byte blocks with it (k = 1, 2, 4, 8), concatenated as one prefix: the
size a delta entry naming k + 1 bases would have. Data for the design of
multi-base deltas (issue 25's bytes target), nothing in snap uses it.
Usage: scripts/multi_base.py NPM_DB WORKDIR"""
import collections, hashlib, os, subprocess, sys
from churn_steps import day_one

npm, work = sys.argv[1], sys.argv[2]
UNIT, BLOCK = 65536, 64
steps = day_one(npm, work)
units = lambda img: [img[i:i + UNIT] for i in range(0, len(img), UNIT)]
changed = lambda a, b: [i for i, u in enumerate(b) if i >= len(a) or a[i] != u]
k_best = max(range(1, len(steps)), key=lambda k: len(changed(units(steps[k - 1]), units(steps[k]))))
old, new = units(steps[k_best - 1]), units(steps[k_best])
where = collections.defaultdict(set)
for j, u in enumerate(old):
    for o in range(0, len(u) - BLOCK + 1, BLOCK):
        where[hashlib.sha1(u[o:o + BLOCK]).digest()[:8]].add(j)


def zsize(data, prefix):
    open(os.path.join(work, "p"), "wb").write(prefix)
    open(os.path.join(work, "d"), "wb").write(data)
    # ZSTD_EXTRA: match finder parameters (e.g. "--zstd=hlog=18,wlog=20":
    # level 1's own hash table is sized for one base and loses matches in
    # a prefix of several).
    extra = os.environ.get("ZSTD_EXTRA", "").split()
    args = ["zstd", "-1", "-q", "-c", "d"] + extra + (["--patch-from=p"] if prefix else [])
    return len(subprocess.run(args, capture_output=True, cwd=work).stdout)


ks = [0, 1, 2, 4, 8]
total = {k: 0 for k in ks}
for i in changed(old, new):
    u = new[i]
    score = collections.Counter()
    for o in range(0, len(u) - BLOCK + 1, 16):
        for j in where.get(hashlib.sha1(u[o:o + BLOCK]).digest()[:8], ()):
            score[j] += 1
    same = old[i] if i < len(old) else b""
    ranked = [j for j, _ in score.most_common(9) if j != i]
    for k in ks:
        total[k] += zsize(u, same + b"".join(old[j] for j in ranked[:k]))
n = len(changed(old, new))
print(f"transaction {k_best - 1}: {n} units changed; bytes stored as deltas "
      + ", ".join(f"{k + 1} base{'s' if k else ''} {total[k] // 1024} KiB" for k in ks)
      + f" (1 base = today's)")
