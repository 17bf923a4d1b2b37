#!/usr/bin/env python3
"""A 2 GiB SQLite database with 1 % of its rows changed per day: bytes snap
adds per day, take time, restore time and each command's peak RSS (figures
for the README). ROWS=45000000 makes it ~10 GiB.
Usage: [ROWS=N] [KEEP_DB=1] [SEED=N] scripts/bench_bigdb.py SNAP_BIN [WORKDIR] [DAYS]
SNAP_BIN "-" only creates the database; KEEP_DB=1 keeps it for the next run."""
import json, os, random, shutil, sqlite3, subprocess, sys, tempfile, time

snap = sys.argv[1]
work = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="snap-bigdb-")
days = int(sys.argv[3]) if len(sys.argv) > 3 else 3
os.makedirs(work, exist_ok=True)
db, store = os.path.join(work, "big.db"), os.path.join(work, "store")
rows = int(os.environ.get("ROWS", 9_000_000))
if not os.path.exists(db):
    c = sqlite3.connect(db)
    c.execute("PRAGMA journal_mode=wal")
    c.execute("CREATE TABLE items(id INTEGER PRIMARY KEY, k INTEGER, v TEXT)")
    rnd = random.Random(1)
    batch = 100_000
    for start in range(0, rows, batch):
        c.executemany("INSERT INTO items VALUES (?, ?, ?)",
                      ((i, rnd.getrandbits(40), "%x" % rnd.getrandbits(800)) for i in range(start, start + batch)))
        c.commit()
    c.execute("CREATE INDEX items_k ON items(k)")
    c.commit()
    c.close()
size = os.path.getsize(db)
print(f"database: {size / 2**30:.2f} GiB, {rows} rows")
if snap == "-":
    sys.exit(0)

rss = []

def run(*args):
    """Runs snap; returns (seconds, JSON output) and notes its peak RSS."""
    t = time.perf_counter()
    p = subprocess.Popen([snap, "--store", store, "--json", *args], stdout=subprocess.PIPE, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"snap {' '.join(args)} exited {p.returncode}")
    rss.append(usage.ru_maxrss / 1024)
    return time.perf_counter() - t, json.loads(out)

shutil.rmtree(store, ignore_errors=True)
subprocess.run([snap, "--store", store, "init"], check=True, capture_output=True)
secs, r = run("take", db)
print(f"day 0: take {secs:.1f} s ({size / secs / 1e6:.0f} MB/s), added {r['stats']['added'] / 1e6:.1f} MB, peak RSS {rss[-1]:.0f} MiB")
rnd = random.Random(int(os.environ.get("SEED", 2)))  # another SEED for a kept database
for day in range(1, days + 1):
    c = sqlite3.connect(db)
    for _ in range(rows // 100 // 1000):
        c.executemany("UPDATE items SET v = ? WHERE id = ?",
                      (("%x" % rnd.getrandbits(800), rnd.randrange(rows)) for _ in range(1000)))
        c.commit()
    c.close()
    secs, r = run("take", db)
    print(f"day {day}: 1 % of rows updated; take {secs:.1f} s, added {r['stats']['added'] / 1e6:.1f} MB ({100 * r['stats']['added'] / size:.2f} % of the database), peak RSS {rss[-1]:.0f} MiB")
out = os.path.join(work, "restore")
shutil.rmtree(out, ignore_errors=True)
secs, _ = run("restore", "latest", "--to", out)
print(f"restore: {secs:.1f} s ({size / secs / 2**20:.0f} MiB/s), peak RSS {rss[-1]:.0f} MiB")
index = os.path.getsize(os.path.join(store, "index.redb"))
total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(store) for f in fs)
print(f"store: {total / 1e6:.1f} MB, index {index / 1e6:.1f} MB ({100 * index / total:.1f} %)")
if os.environ.get("KEEP_DB"):
    shutil.rmtree(store)
    shutil.rmtree(out)
else:
    shutil.rmtree(work)
