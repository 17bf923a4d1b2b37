#!/usr/bin/env python3
"""Continuous protection, snap watch beside Litestream (same writer, same
machine, one run). The writer keeps two invariants in every transaction (a
constant sum over 1000 accounts, a log table whose sequence is a contiguous
prefix) at a steady RATE commits a second, with bursts (a bulk insert and a
DELETE of 10 % of a table) in the long runs.

Usage: scripts/bench_watch.py SNAP_BIN LITESTREAM_BIN WORKDIR [rpo] [load] [restore] [bytes] [requests]
  rpo      kill -9 the writer and the tool together at random moments
           (TRIALS each, default 30): seconds of commits lost, invariants.
  load     SECONDS (default 60) of writing beside each tool and beside none:
           writer p50/p99 commit latency, SQLITE_BUSY count (busy_timeout=0),
           the -wal file's peak size, the tool's CPU share and peak RSS, bytes.
  restore  on a copy of BIG_DB (~1 GB; default /tmp/bb/big.db) with the
           writer running, restore to a moment 20 s back: time and invariants.
  bytes    the public benchmark's npm churn (../shared/bench/npm_db.py), DAYS
           simulated days (default 3) applied beside each tool watching
           every second: store and replica growth per day (and Litestream's
           local directory beside the database); with BUCKET=1, snap's
           bucket growth too. NPM_DB: a built npm database to copy
           (default: built from ../shared/bench/data).
  requests SECONDS (default 60) of writing beside snap (shipping at lags of
           1, 10 and 60 s) and beside Litestream, both to one S3 bucket on
           moto (127.0.0.1; VENV: where moto_server is, default ./.venv):
           requests by method, writes per hour and per month.
Litestream gets a file replica with its defaults (1 s sync interval); snap
watches every 500 ms (its default). BUCKET=1: snap also ships its points to
a file:// bucket (default lag, 10 s) and restores from it alone (rpo: lost
seconds from the bucket, and every commit 10 s old must be there; restore:
to a moment, from the bucket). Prints one JSON line per measurement.
"""
import json, os, random, re, shutil, signal, sqlite3, subprocess, sys, tempfile, time

SNAP, LITESTREAM, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
WHAT = sys.argv[4:] or ["rpo", "load", "restore"]
RATE = int(os.environ.get("RATE", 200))
# TOOLS=snap runs snap alone (e.g. to compare snap builds or settings).
TOOLS = os.environ.get("TOOLS", "snap,litestream").split(",")
# BUCKET=1: snap ships its points to a bucket (file://, the default lag of
# 10 s) and every restore reads the bucket alone; Litestream's replica is
# its bucket either way.
BUCKET = os.environ.get("BUCKET") == "1"
DUE = 10.0 if BUCKET else 1.0
os.makedirs(WORK, exist_ok=True)

WRITER = r'''
import sqlite3, sys, time
db, rate, out, bursts = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
c = sqlite3.connect(db, isolation_level=None, timeout=0)
c.execute("PRAGMA journal_mode=wal")
c.executescript("""CREATE TABLE IF NOT EXISTS acct(id INTEGER PRIMARY KEY, bal INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seq(n INTEGER PRIMARY KEY, t REAL, pad BLOB);
CREATE TABLE IF NOT EXISTS bulk(id INTEGER PRIMARY KEY, pad BLOB);
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 1000)
INSERT OR IGNORE INTO acct SELECT i, 1000 FROM s;""")
n = c.execute("SELECT coalesce(max(n), 0) FROM seq").fetchone()[0]
f = open(out, "a", buffering=1)
start = nxt = time.time()
def txn(stmts):
    while True:
        t0 = time.time()
        try:
            c.execute("BEGIN IMMEDIATE")
            for s, a in stmts: c.execute(s, a)
            c.execute("COMMIT")
            return t0
        except sqlite3.OperationalError as e:
            if c.in_transaction: c.execute("ROLLBACK")
            f.write("busy %f %s\n" % (time.time(), e))
            time.sleep(0.001)
burst = [False, False]
while True:
    n += 1
    a, b = n * 7919 % 1000 + 1, n * 104729 % 1000 + 1
    t0 = txn([("UPDATE acct SET bal = bal - 1 WHERE id = ?", (a,)),
              ("UPDATE acct SET bal = bal + 1 WHERE id = ?", (b,)),
              ("INSERT INTO seq VALUES (?, ?, randomblob(300))", (n, time.time()))])
    t1 = time.time()
    f.write("%d %f %f\n" % (n, t1, (t1 - t0) * 1000))
    if bursts and not burst[0] and t1 - start > 15:
        burst[0] = True
        txn([("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 25000) "
              "INSERT INTO bulk(pad) SELECT randomblob(4000) FROM s", ())])
    if bursts and not burst[1] and t1 - start > 35:
        burst[1] = True
        txn([("DELETE FROM bulk WHERE id % 10 = 0", ())])
    nxt += 1 / rate
    time.sleep(max(0, nxt - time.time()))
'''


def emit(**kw):
    print(json.dumps(kw), flush=True)


def start_writer(db, out, bursts=False):
    path = os.path.join(WORK, "writer.py")
    open(path, "w").write(WRITER)
    return subprocess.Popen([sys.executable, path, db, str(RATE), out, "1" if bursts else "0"])


def start_tool(tool, db, home):
    if tool == "snap":
        ship = ["--remote", "file://" + os.path.join(home, "bucket"), "--plaintext"] if BUCKET else []
        return subprocess.Popen([SNAP, "--store", os.path.join(home, "store"), "-q", "watch", db] + ship,
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(home, "tool.err"), "w"))
    if tool == "litestream":
        cfg = os.path.join(home, "litestream.yml")
        open(cfg, "w").write("dbs:\n  - path: %s\n    replica:\n      type: file\n      path: %s\n"
                             % (db, os.path.join(home, "replica")))
        return subprocess.Popen([LITESTREAM, "replicate", "-config", cfg],
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(home, "tool.err"), "w"))
    return None


def restore(tool, db, home, out, moment=None):
    if os.path.exists(out):
        os.remove(out)
    if tool == "snap":
        d = out + ".d"
        shutil.rmtree(d, ignore_errors=True)
        spec = "latest:" + db + ("@" + moment if moment else "")
        where = ["--store", os.path.join(home, "store")]
        if BUCKET:
            where = ["--store", os.path.join(home, "no-store"), "-q", "restore", "--remote", "file://" + os.path.join(home, "bucket")]
        else:
            where += ["-q", "restore"]
        subprocess.run([SNAP] + where + [spec, "--to", d], check=True, stdout=subprocess.DEVNULL)
        os.rename(os.path.join(d, os.path.basename(db)), out)
        shutil.rmtree(d)
    else:
        cmd = [LITESTREAM, "restore", "-config", os.path.join(home, "litestream.yml"), "-o", out]
        if moment:
            cmd += ["-timestamp", moment]
        subprocess.run(cmd + [db], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def check(db):
    c = sqlite3.connect(db)
    ic = c.execute("PRAGMA integrity_check").fetchone()[0]
    s = c.execute("SELECT sum(bal) FROM acct").fetchone()[0]
    cnt, mx = c.execute("SELECT count(*), coalesce(max(n), 0) FROM seq").fetchone()
    c.close()
    return ic == "ok" and s == 1_000_000 and cnt == mx, mx


def commits(out):
    done, busy = [], 0
    for line in open(out):
        p = line.split()
        if p[0] == "busy":
            busy += 1
        elif len(p) == 3:
            done.append((int(p[0]), float(p[1]), float(p[2])))
    return done, busy


def rpo(trials):
    for tool in TOOLS:
        lost, bad, short = [], 0, 0
        for k in range(trials):
            home = tempfile.mkdtemp(dir=WORK)
            db, out = os.path.join(home, "ledger.db"), os.path.join(home, "commits")
            w = start_writer(db, out)
            time.sleep(0.5)
            t = start_tool(tool, db, home)
            time.sleep(random.Random(k).uniform(4, 9) + (10 if BUCKET else 0))
            killed = time.time()
            w.send_signal(signal.SIGKILL); t.send_signal(signal.SIGKILL)
            w.wait(); t.wait()
            done, _ = commits(out)
            restore(tool, db, home, os.path.join(home, "r.db"))
            ok, got = check(os.path.join(home, "r.db"))
            bad += not ok
            missing = [c for c in done if c[0] > got]
            lost.append(round(killed - missing[0][1], 3) if missing else 0.0)
            short += any(c[1] <= killed - DUE for c in missing)
            shutil.rmtree(home)
        lost.sort()
        emit(measure="rpo_bucket" if BUCKET else "rpo", tool=tool, trials=trials, broken=bad,
             missed_a_commit_older_than_s={DUE: short},
             lost_s_median=lost[len(lost) // 2], lost_s_max=lost[-1], lost_s=lost)


def proc_cpu(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def proc_hwm(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) // 1024


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def load(seconds):
    for tool in ["none", "snap", "litestream"]:
        home = tempfile.mkdtemp(dir=WORK)
        db, out = os.path.join(home, "ledger.db"), os.path.join(home, "commits")
        w = start_writer(db, out, bursts=True)
        time.sleep(0.5)
        t = start_tool(tool, db, home)
        wal_peak, end = 0, time.time() + seconds
        while time.time() < end:
            try:
                wal_peak = max(wal_peak, os.path.getsize(db + "-wal"))
            except OSError:
                pass
            time.sleep(0.1)
        cpu = proc_cpu(t.pid) if t else 0
        hwm = proc_hwm(t.pid) if t else 0
        w.send_signal(signal.SIGKILL); w.wait()
        if t:
            t.send_signal(signal.SIGTERM); t.wait()
        done, busy = commits(out)
        lat = sorted(c[2] for c in done)
        kept = du(os.path.join(home, "store" if tool == "snap" else "replica")) if t else 0
        emit(measure="load", tool=tool, seconds=seconds, commits=len(done),
             p50_ms=round(lat[len(lat) // 2], 3), p99_ms=round(lat[int(len(lat) * 0.99)], 3),
             busy=busy, wal_peak_mb=round(wal_peak / 2**20, 1), cpu_share=round(cpu / seconds, 3),
             peak_rss_mb=hwm, stored_mb=round(kept / 2**20, 1), db_mb=round(os.path.getsize(db) / 2**20, 1))
        shutil.rmtree(home)


def requests(seconds):
    """Requests each tool sends to an S3 bucket (moto on 127.0.0.1, its
    request log counted) while the writer runs: snap at lags of 1, 10 and
    60 s, Litestream with its defaults; per hour and per month."""
    venv = os.environ.get("VENV", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".venv"))
    port = 45000 + random.randrange(1000)
    home = tempfile.mkdtemp(dir=WORK)
    log = os.path.join(home, "moto.log")
    moto = subprocess.Popen([os.path.join(venv, "bin", "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    endpoint = "http://127.0.0.1:%d" % port
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_REGION="us-east-1",
               AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    # A CA bundle for a plain-http endpoint stops Litestream's AWS client.
    env.pop("AWS_CA_BUNDLE", None)
    time.sleep(3)
    subprocess.run([os.path.join(venv, "bin", "python"), "-c",
                    "import boto3; boto3.client('s3', endpoint_url=%r, region_name='us-east-1', "
                    "aws_access_key_id='b', aws_secret_access_key='b').create_bucket(Bucket='bench')" % endpoint],
                   check=True)
    runs = [("snap", lag) for lag in (1, 10, 60)] + [("litestream", None)]
    for tool, lag in runs:
        if tool not in TOOLS:
            continue
        sub = tempfile.mkdtemp(dir=home)
        db, out = os.path.join(sub, "ledger.db"), os.path.join(sub, "commits")
        prefix = "snap%s" % lag if tool == "snap" else "ls"
        w = start_writer(db, out)
        time.sleep(0.5)
        if tool == "snap":
            t = subprocess.Popen([SNAP, "--store", os.path.join(sub, "store"), "-q", "watch", db, "--plaintext",
                                  "--remote", "s3://bench/" + prefix, "--lag-seconds", str(lag)],
                                 env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(sub, "tool.err"), "w"))
        else:
            cfg = os.path.join(sub, "litestream.yml")
            open(cfg, "w").write(
                "dbs:\n  - path: %s\n    replica:\n      type: s3\n      bucket: bench\n      path: ls\n"
                "      endpoint: %s\n      region: us-east-1\n      force-path-style: true\n" % (db, endpoint))
            t = subprocess.Popen([LITESTREAM, "replicate", "-config", cfg], env=env,
                                 stdout=subprocess.DEVNULL, stderr=open(os.path.join(sub, "tool.err"), "w"))
        start = len(open(log).readlines())
        time.sleep(seconds)
        w.send_signal(signal.SIGKILL); w.wait()
        t.send_signal(signal.SIGTERM); t.wait()
        lines = [l for l in open(log).readlines()[start:] if "/bench/%s" % prefix in l and "HTTP/1.1" in l]
        count = {}
        for l in lines:
            method = re.sub(r"\x1b\[[0-9;]*m", "", l.split('"')[1]).split()[0]
            count[method] = count.get(method, 0) + 1
        writes = count.get("PUT", 0) + count.get("POST", 0)
        emit(measure="requests", tool=tool, lag_s=lag, seconds=seconds, by_method=count,
             writes_per_hour=round(writes * 3600 / seconds), writes_per_month=round(writes * 3600 * 24 * 30 / seconds),
             usd_per_month_at_0_005_per_1000=round(writes * 3600 * 24 * 30 / seconds * 0.005 / 1000, 2))
    moto.send_signal(signal.SIGTERM); moto.wait()
    shutil.rmtree(home)


def restore_moment(big):
    for tool in TOOLS:
        home = tempfile.mkdtemp(dir=WORK)
        db, out = os.path.join(home, "ledger.db"), os.path.join(home, "commits")
        shutil.copy(big, db)
        c = sqlite3.connect(db); c.execute("PRAGMA journal_mode=wal"); c.close()
        w = start_writer(db, out)
        t = start_tool(tool, db, home)
        time.sleep(45)
        moment = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 20))
        time.sleep(5)
        t0 = time.time()
        restore(tool, db, home, os.path.join(home, "r.db"), moment)
        took = time.time() - t0
        ok, got = check(os.path.join(home, "r.db"))
        w.send_signal(signal.SIGKILL); w.wait(); t.send_signal(signal.SIGTERM); t.wait()
        done, _ = commits(out)
        m = time.mktime(time.strptime(moment, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        due = max([c[0] for c in done if c[1] <= m - 1] or [0])
        emit(measure="restore_to_moment" + ("_from_bucket" if BUCKET else ""), tool=tool, db_mb=round(os.path.getsize(db) / 2**20),
             seconds=round(took, 2), invariants=ok, holds_commits_to_1s_before=got >= due,
             stored_mb=round(du(os.path.join(home, "store" if tool == "snap" else "replica")) / 2**20, 1))
        shutil.rmtree(home)


# The npm churn with each transaction in a second of its own, as commits
# spread over a real day would be (so each gets its own point).
PACED = r'''
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("npm_db", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
opened = m.open_db
class Paced:
    def __init__(self, con): self.con = con
    def execute(self, sql, *a):
        r = self.con.execute(sql, *a)
        if sql == "COMMIT": time.sleep(1.2)
        return r
    def __getattr__(self, name): return getattr(self.con, name)
m.open_db = lambda p: Paced(opened(p))
m.churn(sys.argv[2], int(sys.argv[3]))
'''


def bytes_per_day(days):
    bench = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench")
    npm = os.environ.get("NPM_DB") or os.path.join(WORK, "npm.db")
    if not os.path.exists(npm):
        subprocess.run([sys.executable, os.path.join(bench, "npm_db.py"), "build",
                        os.path.join(bench, "data", "npm.tsv.zst"), npm], check=True)
    for tool in TOOLS:
        home = tempfile.mkdtemp(dir=WORK)
        db = os.path.join(home, "npm.db")
        shutil.copy(npm, db)
        bucket = os.path.join(home, "bucket")
        if tool == "snap":
            # BUCKET=1: the points are shipped too (the default lag, 10 s).
            ship = ["--remote", "file://" + bucket, "--plaintext"] if BUCKET else []
            t = subprocess.Popen([SNAP, "--store", os.path.join(home, "store"), "-q", "watch", db,
                                  "--interval-ms", "1000"] + ship, stdout=subprocess.DEVNULL)
        else:
            t = start_tool(tool, db, home)
        kept = [os.path.join(home, "store" if tool == "snap" else "replica")]
        if BUCKET and tool == "snap":
            kept.append(bucket)
        settle = 15 if BUCKET else 5
        time.sleep(8 + settle)
        sizes = [[du(k) if os.path.exists(k) else 0 for k in kept]]
        for d in range(1, days + 1):
            paced = os.path.join(WORK, "paced.py")
            open(paced, "w").write(PACED)
            subprocess.run([sys.executable, paced, os.path.join(bench, "npm_db.py"), db, str(d)], check=True)
            time.sleep(settle)
            sizes.append([du(k) for k in kept])
        local = du(db + "-litestream") if os.path.exists(db + "-litestream") else 0
        t.send_signal(signal.SIGTERM); t.wait()
        for i, where in enumerate(["local", "bucket"][:len(kept)]):
            growth = [b[i] - a[i] for a, b in zip(sizes, sizes[1:])]
            emit(measure="bytes_per_day", tool=tool, where=where, db_mb=round(os.path.getsize(npm) / 2**20, 1),
                 first_mb=round(sizes[0][i] / 2**20, 2), growth_mb_per_day=[round(g / 2**20, 2) for g in growth],
                 mean_growth_mb=round(sum(growth) / len(growth) / 2**20, 2), local_dir_mb=round(local / 2**20, 1))
        shutil.rmtree(home)


if "rpo" in WHAT:
    rpo(int(os.environ.get("TRIALS", 30)))
if "load" in WHAT:
    load(int(os.environ.get("SECONDS", 60)))
if "restore" in WHAT:
    restore_moment(os.environ.get("BIG_DB", "/tmp/bb/big.db"))
if "bytes" in WHAT:
    bytes_per_day(int(os.environ.get("DAYS", 3)))
if "requests" in WHAT:
    requests(int(os.environ.get("SECONDS", 60)))
