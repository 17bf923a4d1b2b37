#!/usr/bin/env python3
"""A take of a watched database costs what changed: a WAL database (e.g.
the ~10 GiB one `ROWS=45000000 KEEP_DB=1 scripts/bench_bigdb.py - DIR`
builds) watched by `snap watch` through a day of 1 % row churn (as
bench_bigdb applies it), then taken: following the watcher's newest point
without the check (twice: the first compacts what the watcher's index
commits left), following it with the check (its cost
reported apart), and whole as before (`--no-follow`). Time and bytes read
(`rchar` of /proc/PID/io, polled) for each, and the watcher's CPU and reads
over the day.

Usage: scripts/bench_take_follow.py SNAP_BIN DB WORKDIR   (DB is changed in place)
Prints one JSON line per measurement."""
import json, os, random, signal, sqlite3, subprocess, sys, time

snap, db, work = sys.argv[1], sys.argv[2], sys.argv[3]
store = os.path.join(work, "store")
os.makedirs(work, exist_ok=True)


def emit(**kw):
    print(json.dumps(kw), flush=True)


def io_of(pid):
    try:
        return {k: int(v) for k, v in (l.split(": ") for l in open("/proc/%d/io" % pid))}
    except OSError:
        return None


def measured(*args):
    """Runs snap to the end: (seconds, rchar, JSON output)."""
    out = os.path.join(work, "out.json")
    t = time.perf_counter()
    p = subprocess.Popen([snap, "--store", store, "--json", *args], stdout=open(out, "w"))
    rchar = 0
    while p.poll() is None:
        got = io_of(p.pid)
        rchar = got["rchar"] if got else rchar
        time.sleep(0.002)
    secs = time.perf_counter() - t
    if p.returncode not in (0, 5):
        sys.exit("snap %s exited %d" % (" ".join(args), p.returncode))
    return secs, rchar, json.load(open(out))


def points():
    out = subprocess.run([snap, "--store", store, "--json", "list", "--points"], capture_output=True, text=True)
    return [s for s in json.loads(out.stdout or "[]") if s.get("point")]


size = os.path.getsize(db)
rows = sqlite3.connect(db).execute("SELECT max(id) + 1 FROM items").fetchone()[0]
subprocess.run([snap, "--store", store, "init"], check=True, capture_output=True)
watch = subprocess.Popen([snap, "--store", store, "-q", "watch", db], stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(work, "watch.err"), "w"))
t0 = time.time()
while not points():
    time.sleep(1)
emit(measure="first_point", db_gib=round(size / 2**30, 2), seconds=round(time.time() - t0, 1))
before = io_of(watch.pid)
rnd = random.Random(int(os.environ.get("SEED", 3)))
c = sqlite3.connect(db)
t0 = time.time()
for _ in range(rows // 100 // 1000):
    c.executemany("UPDATE items SET v = ? WHERE id = ?",
                  (("%x" % rnd.getrandbits(800), rnd.randrange(rows)) for _ in range(1000)))
    c.commit()
c.close()
churn = time.time() - t0
# The watcher catches up: under 1 MB read for 3 s (an idle look reads the
# log's header, some bytes).
last, still = io_of(watch.pid)["rchar"], 0
while still < 3:
    time.sleep(1)
    now = io_of(watch.pid)["rchar"]
    still = still + 1 if now - last < 2**20 else 0
    last = now
caught_up = time.time() - t0 - 3
after = io_of(watch.pid)
ticks = os.sysconf("SC_CLK_TCK")
cpu = sum(int(x) for x in open("/proc/%d/stat" % watch.pid).read().split(")")[1].split()[11:13]) / ticks
emit(measure="day_of_churn", rows_updated=rows // 100, seconds=round(churn, 1), caught_up_s=round(caught_up, 1), points=len(points()),
     watcher_read_gib=round((after["rchar"] - before["rchar"]) / 2**30, 2), watcher_cpu_s=round(cpu, 1))
steps = [("take_followed", ["--no-check"]), ("take_followed_again", ["--no-check"]),
         ("take_followed_checked", []), ("take_whole", ["--no-follow"])]
for name, args in steps:
    secs, rchar, r = measured("take", db, *args)
    st = r["stats"]
    emit(measure=name, seconds=round(secs, 2), rchar_mb=round(rchar / 1e6, 1), read_mb=round(st["read"] / 1e6, 1),
         db_mb=round(size / 1e6), check_s=round(st.get("check_ms", 0) / 1000, 2), added_mb=round(st["added"] / 1e6, 2),
         check=r["databases"][0]["check"])
watch.send_signal(signal.SIGTERM)
watch.wait()
