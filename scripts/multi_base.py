#!/usr/bin/env python3
"""How much several delta bases save on the npm churn's day 1 (the design
data behind store format 4's `Deltas` entries, DESIGN.md "Delta chains").
For the transactions given (default: the insert transaction and the FTS5
merge, 5 and 7), each 64 KiB unit the transaction changes is compressed
(`zstd --patch-from`, level LVL, default -3: snap's delta level for a small
database) against its previous version alone (one base), and against that
plus the k previous versions of other changed units that share the most
32-byte blocks with it (k = 2, 4, 8): the blocks of those units are indexed
at aligned offsets, and the new unit is looked up at every offset (what
`store::similar` does; sampling offsets instead finds the wrong units).
Usage: [TX=5,7] [LVL=-3] scripts/multi_base.py NPM_DB WORKDIR"""
import collections, os, subprocess, sys
from churn_steps import day_one

npm, work = sys.argv[1], sys.argv[2]
UNIT, B = 65536, 32
steps = day_one(npm, work)
units = lambda img: [img[i:i + UNIT] for i in range(0, len(img), UNIT)]
changed = lambda a, b: [i for i, u in enumerate(b) if i >= len(a) or a[i] != u]


def zsize(data, prefix):
    open(os.path.join(work, "p"), "wb").write(prefix)
    open(os.path.join(work, "d"), "wb").write(data)
    args = ["zstd", os.environ.get("LVL", "-3"), "-q", "-c", "d", "--zstd=hlog=18"]
    return len(subprocess.run(args + (["--patch-from=p"] if prefix else []),
                              capture_output=True, cwd=work).stdout)


for t in [int(x) for x in os.environ.get("TX", "5,7").split(",")]:
    old, new = units(steps[t]), units(steps[t + 1])
    ch = changed(old, new)
    owner = {}
    for j in ch:
        if j < len(old):
            for o in range(0, len(old[j]) - B + 1, B):
                blk = old[j][o:o + B]
                if blk.count(blk[0]) < B:
                    owner.setdefault(blk, j)
    total = collections.Counter()
    for i in ch:
        u, hits, o = new[i], collections.Counter(), 0
        while o <= len(u) - B:
            j = owner.get(u[o:o + B])
            if j is None:
                o += 1
            else:
                hits[j] += 1
                o += B
        same = old[i] if i < len(old) else b""
        ranked = [j for j, n in hits.most_common(9) if j != i and n >= 4]
        total[1] += zsize(u, same)
        for k in (2, 4, 8):
            total[k + 1] += zsize(u, same + b"".join(old[j] for j in ranked[:k]))
    print(f"transaction {t}: {len(ch)} units changed; stored as deltas against "
          + ", ".join(f"{k} base{'s' if k > 1 else ''}: {n // 1024} KiB" for k, n in sorted(total.items())))
