//! `snap watch` against a real writer process: points within a second of
//! every commit, every point a state that existed, and every way the log
//! can move under the watcher (restarts, TRUNCATE checkpoints, VACUUM, the
//! file replaced, the watcher killed) followed or reported as a gap.

mod common;

use common::ledger;
use common::{points, snap, snap_json, snap_ok};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Not a test: the writer process the tests below start (this binary run
/// again with the ledger's variables set).
#[test]
fn writer_process() {
    let Ok(db) = std::env::var(ledger::DB_VAR) else {
        return;
    };
    let rate = std::env::var(ledger::RATE_VAR).unwrap().parse().unwrap();
    ledger::run(
        Path::new(&db),
        rate,
        &std::env::var(ledger::MODE_VAR).unwrap(),
    );
}

fn writer(db: &Path, rate: u32, mode: &str) -> ledger::Writer {
    ledger::start("writer_process", db, rate, mode)
}

fn watcher(store: &Path, db: &Path, interval_ms: u64) -> Child {
    Command::new(common::snap_bin())
        .arg("--store")
        .arg(store)
        .args(["watch", "--interval-ms", &interval_ms.to_string()])
        .arg(db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn kill(c: &mut Child) {
    let _ = c.kill();
    let _ = c.wait();
}

/// Restores snapshot `id` into `dir` and checks the ledger's invariants.
fn restored(store: &Path, id: &str, dir: &Path) -> Result<i64, String> {
    let _ = std::fs::remove_dir_all(dir);
    snap_ok(store, &["restore", id, "--to", dir.to_str().unwrap()]);
    ledger::check(&dir.join("ledger.db"))
}

/// Checks every point (at most `limit`, spread over the history): each a
/// state that existed, their sequences never going back within a window.
fn every_point_existed(store: &Path, scratch: &Path, limit: usize) -> usize {
    let all = points(store);
    let step = all.len().div_ceil(limit).max(1);
    let mut checked = 0;
    for p in all.iter().step_by(step).chain(all.last()) {
        let id = p["id"].as_str().unwrap();
        if let Err(e) = restored(store, id, scratch) {
            panic!(
                "point {id} ({}) restores to a state that never existed: {e}",
                p["point"]
            );
        }
        checked += 1;
    }
    checked
}

#[test]
fn a_point_follows_every_commit_within_a_second() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let mut lost = Vec::new();
    for trial in 0..3u64 {
        let db = tmp.path().join(format!("t{trial}")).join("ledger.db");
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        let mut w = writer(&db, 200, "");
        std::thread::sleep(Duration::from_millis(300));
        let mut watch = watcher(&store, &db, 500);
        // Killed together at an uneven moment.
        std::thread::sleep(Duration::from_millis(3000 + trial * 613));
        let killed_at = ledger::now();
        let commits = w.kill();
        kill(&mut watch);
        let newest = points(&store)
            .into_iter()
            .rev()
            .find(|p| p["paths"][0] == db.to_str().unwrap())
            .expect("a point of this database");
        let got = restored(
            &store,
            newest["id"].as_str().unwrap(),
            &tmp.path().join("r"),
        )
        .unwrap();
        let due = commits
            .iter()
            .filter(|(_, t)| *t <= killed_at - 1.0)
            .map(|(n, _)| *n)
            .max()
            .unwrap();
        assert!(got >= due, "trial {trial}: the newest point holds commit {got}, and {due} completed a second before the kill");
        let lost_s = commits
            .iter()
            .find(|(n, _)| *n == got + 1)
            .map_or(0.0, |(_, t)| killed_at - t);
        lost.push(lost_s);
    }
    eprintln!("seconds of commits lost at each kill: {lost:?}");
    assert!(every_point_existed(&store, &tmp.path().join("r"), 30) > 5);
    ok_verify(&store);
}

fn ok_verify(store: &Path) {
    let out = snap(store, &["verify"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
}

#[test]
fn restarts_truncation_vacuum_and_replacement_are_followed_or_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let db = tmp.path().join("ledger.db");
    let mut w = writer(&db, 400, "truncate,vacuum,bulk");
    std::thread::sleep(Duration::from_millis(300));
    let mut watch = watcher(&store, &db, 200);
    std::thread::sleep(Duration::from_secs(5));
    let before = w.kill().last().unwrap().0;
    std::thread::sleep(Duration::from_millis(600));
    // The database replaced by an earlier point, in place, under the watcher.
    let early = points(&store)[2]["id"].as_str().unwrap().to_string();
    snap_ok(&store, &["restore", &early, "--in-place"]);
    let mut w = writer(&db, 200, "");
    std::thread::sleep(Duration::from_secs(2));
    w.kill();
    caught_up(&store, &db, &tmp.path().join("c"));
    kill(&mut watch);
    let all = points(&store);
    let reasons: Vec<String> = all
        .iter()
        .filter_map(|p| p["point"]["full_read"].as_str().map(String::from))
        .collect();
    let follows = all
        .iter()
        .filter(|p| p["point"]["full_read"].is_null())
        .count();
    eprintln!(
        "{} points, {follows} from the log; full reads: {reasons:?}",
        all.len()
    );
    assert!(follows * 2 > all.len(), "most points follow the log");
    let starts: Vec<&str> = all
        .iter()
        .filter_map(|p| p["point"]["starts"].as_str())
        .collect();
    assert!(starts.iter().any(|s| s.contains("replaced")), "{starts:?}");
    // The newest point is the database as the second writer left it.
    let last = restored(
        &store,
        all.last().unwrap()["id"].as_str().unwrap(),
        &tmp.path().join("r"),
    )
    .unwrap();
    assert_eq!(last, ledger::check(&db).unwrap());
    assert!(before > 1000);
    every_point_existed(&store, &tmp.path().join("r"), 40);
    ok_verify(&store);
}

#[test]
fn a_killed_watcher_leaves_a_gap_and_nothing_broken() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let db = tmp.path().join("ledger.db");
    let mut w = writer(&db, 300, "truncate");
    std::thread::sleep(Duration::from_millis(300));
    let mut rng = common::Rng(7);
    // The campaign: SNAP_WATCH_KILLS=300 (CI runs a short one).
    let kills = std::env::var("SNAP_WATCH_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(12u64);
    for _ in 0..kills {
        let mut watch = watcher(&store, &db, 100);
        std::thread::sleep(Duration::from_millis(150 + rng.next() % 600));
        kill(&mut watch);
    }
    w.kill();
    let windows = snap_ok(&store, &["list"]);
    let gaps = windows.matches("gap before it").count();
    // A watcher killed before its first look records nothing: at most one
    // window per run.
    let gaps = gaps as u64;
    assert!(gaps >= 2 && gaps <= kills, "{windows}");
    let all = points(&store);
    let full = all
        .iter()
        .filter(|p| !p["point"]["full_read"].is_null())
        .count();
    eprintln!(
        "{kills} kills: {} points, {gaps} windows, {full} full reads",
        all.len()
    );
    // The campaign restores every point; the short run 40 of them.
    let limit = if kills > 12 { usize::MAX } else { 40 };
    every_point_existed(&store, &tmp.path().join("r"), limit);
    ok_verify(&store);
    let started = Instant::now();
    // The store is whole: a take beside it works, and gc leaves it verified.
    snap_ok(&store, &["take", db.to_str().unwrap()]);
    assert!(started.elapsed() < Duration::from_secs(60));
    let _: PathBuf = db;
}

#[test]
fn gc_thins_points_while_the_watcher_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let db = tmp.path().join("ledger.db");
    let mut w = writer(&db, 200, "truncate");
    std::thread::sleep(Duration::from_millis(300));
    let mut watch = watcher(&store, &db, 100);
    std::thread::sleep(Duration::from_secs(3));
    let before = points(&store).len();
    // Every point but those of the last second, and the newest, goes; the
    // watcher carries on from its previous point, which gc keeps.
    snap_ok(&store, &["gc", "--keep-last", "1", "--points", "within=1s"]);
    let after = points(&store).len();
    assert!(
        after < before / 2,
        "{before} points before gc, {after} after"
    );
    std::thread::sleep(Duration::from_secs(2));
    // A forgotten newest point: the next one reads every page. The writer
    // stops first, so that the newest point stays the watcher's last.
    w.kill();
    std::thread::sleep(Duration::from_millis(500));
    let newest = points(&store).last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    snap_ok(&store, &["forget", &newest]);
    let mut w = writer(&db, 200, "");
    std::thread::sleep(Duration::from_secs(1));
    w.kill();
    caught_up(&store, &db, &tmp.path().join("c"));
    kill(&mut watch);
    let all = points(&store);
    assert!(all
        .iter()
        .any(|p| p["point"]["starts"] == "the previous point was forgotten"));
    let last = restored(
        &store,
        all.last().unwrap()["id"].as_str().unwrap(),
        &tmp.path().join("r"),
    );
    assert_eq!(last.unwrap(), ledger::check(&db).unwrap());
    every_point_existed(&store, &tmp.path().join("r"), 30);
    ok_verify(&store);
}

/// The story: a migration cascade-deletes candidates while the app keeps
/// writing. `snap log` finds the commit, `diff` between two moments shows
/// it, and `recover` as of the moment before puts the rows back.
#[test]
fn the_commit_that_deleted_rows_is_found_and_undone() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let db = tmp.path().join("app.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=wal; PRAGMA foreign_keys=on;
         CREATE TABLE candidates(id INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE interviews(id INTEGER PRIMARY KEY,
             candidate INTEGER REFERENCES candidates(id) ON DELETE CASCADE, note TEXT);
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 100)
         INSERT INTO candidates SELECT i, 'c' || i FROM s;
         INSERT INTO interviews SELECT id, id, 'ok' FROM candidates;",
    )
    .unwrap();
    let mut watch = watcher(&store, &db, 100);
    std::thread::sleep(Duration::from_millis(500));
    let app = |sql: &str| {
        c.execute_batch(sql).unwrap();
        std::thread::sleep(Duration::from_millis(400));
    };
    app("UPDATE candidates SET name = 'renamed' WHERE id = 50");
    app("DELETE FROM candidates WHERE id <= 35");
    app("INSERT INTO candidates(name) VALUES ('new one')");
    std::thread::sleep(Duration::from_millis(300));
    kill(&mut watch);
    let db_s = db.to_str().unwrap();
    let log = snap_json(&store, &["log", db_s, "--table", "candidates"]);
    let entries = log.as_array().unwrap();
    let deleted = entries
        .iter()
        .find(|e| e["removed"] == 35)
        .unwrap_or_else(|| panic!("no entry with 35 removed: {log}"));
    assert_eq!(deleted["added"], 0);
    assert!(entries
        .iter()
        .any(|e| e["changed"] == 1 && e["keys"][0] == "50"));
    // Filtered: only the rows asked about.
    let some = snap_json(
        &store,
        &["log", db_s, "--table", "interviews", "--where", "id <= 10"],
    );
    assert!(some.as_array().unwrap().iter().any(|e| e["removed"] == 10));
    // Between the two moments, diff shows the 35; recover as of before.
    let before = deleted["from"][1].as_str().unwrap().to_string();
    let after = deleted["to"][1].as_str().unwrap().to_string();
    let spec = |m: &str| format!("latest:{db_s}@{m}");
    let d = snap_json(&store, &["diff", &spec(&before), &spec(&after)]);
    assert!(d.to_string().contains("\"removed\":35"), "{d}");
    snap_ok(&store, &["recover", &spec(&before), "--db", db_s]);
    let n: i64 = c
        .query_row("SELECT count(*) FROM candidates", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 101, "the 35 are back and the new one stays");
    let i: i64 = c
        .query_row("SELECT count(*) FROM interviews", [], |r| r.get(0))
        .unwrap();
    assert_eq!(i, 100);
    // A moment before the first point finds nothing, and says so.
    let out = snap(
        &store,
        &["restore", &spec("2000-01-01T00:00:00Z"), "--to", "/tmp/x"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr(&out));
    assert!(common::stderr(&out).contains("at or before 2000-01-01"));
}

#[test]
fn the_daemon_runs_configured_watches_until_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let db = data.join("ledger.db");
    let config = tmp.path().join("snap.toml");
    let log = tmp.path().join("log.jsonl");
    std::fs::write(
        &config,
        format!(
            "[watches.app]\npaths = [{:?}]\ninterval_ms = 100\nremote = \"bucket\"\nlag_seconds = 2\n\
             [remotes.bucket]\nurl = \"file://{}\"\nplaintext = true\n[monitoring]\nlog = {:?}\ntextfile = {:?}\n",
            data,
            tmp.path().join("bucket").display(),
            log,
            tmp.path().join("prom").join("snap.prom")
        ),
    )
    .unwrap();
    let mut w = writer(&db, 200, "");
    std::thread::sleep(Duration::from_millis(300));
    let daemon = Command::new(common::snap_bin())
        .arg("--store")
        .arg(&store)
        .arg("--config")
        .arg(&config)
        .arg("daemon")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let done = w.kill();
    caught_up(&store, &db, &tmp.path().join("c"));
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let out = daemon.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("watch app: stopped after"), "{err}");
    // The directory's database was found and followed to its last commit.
    let all = points(&store);
    assert!(all.len() > 5, "{err}");
    let last = restored(
        &store,
        all.last().unwrap()["id"].as_str().unwrap(),
        &tmp.path().join("r"),
    );
    // The writer may be killed after a commit and before it printed it.
    assert!(last.unwrap() >= done.last().unwrap().0);
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("\"watch\":\"app\""));
    // Every point was shipped to the bucket, the last one as the daemon stopped.
    let cfg = config.to_str().unwrap();
    let remote = snap_json(&store, &["--config", cfg, "list", "--remote", "bucket"]);
    let shipped: Vec<&str> = remote
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let local: Vec<&str> = all.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(shipped, local, "{err}");
    // The metrics beside the jobs' textfile count the points and the ships.
    let prom = std::fs::read_to_string(tmp.path().join("prom/snap-watches.prom")).unwrap();
    let value = |series: &str| -> f64 {
        let line = prom.lines().find(|l| l.starts_with(series)).expect(series);
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(
        value("snap_watch_points_total{watch=\"app\"") as usize,
        all.len(),
        "{prom}"
    );
    assert!(
        value("snap_watch_ship_runs_total{watch=\"app\"}") >= 1.0,
        "{prom}"
    );
    assert_eq!(
        value("snap_watch_ship_failures_total{watch=\"app\"}"),
        0.0,
        "{prom}"
    );
    // `status` says the database is followed; once it is written with no
    // watcher to follow it, it says the watch is behind (exit 7).
    let ok = snap(&store, &["--config", cfg, "status"]);
    assert_eq!(ok.status.code(), Some(0), "{}", common::stderr(&ok));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("newest point"));
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute("UPDATE acct SET bal = bal WHERE id = 1", [])
        .unwrap();
    drop(c);
    set_wal_mtime_ahead(&db, 60);
    let behind = snap(&store, &["--config", cfg, "status"]);
    assert_eq!(behind.status.code(), Some(7));
    assert!(String::from_utf8_lossy(&behind.stdout).contains("BEHIND"));
    // A watch without paths is refused, naming it.
    std::fs::write(&config, "[watches.bad]\npaths = []\n").unwrap();
    let out = snap(
        &store,
        &["--config", config.to_str().unwrap(), "config", "check"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("watch bad"));
}

/// Sets the modification time of `db` (and its log, if any) `secs` seconds
/// ahead: a write that no point followed.
fn set_wal_mtime_ahead(db: &Path, secs: u64) {
    let t = std::time::SystemTime::now() + Duration::from_secs(secs);
    for p in [
        PathBuf::from(format!("{}-wal", db.display())),
        db.to_path_buf(),
    ] {
        if let Ok(f) = std::fs::File::options().write(true).open(&p) {
            f.set_modified(t).unwrap();
        }
    }
}

#[test]
fn a_busy_store_puts_looks_off_and_says_so_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let db = tmp.path().join("ledger.db");
    let mut w = writer(&db, 200, "");
    std::thread::sleep(Duration::from_millis(300));
    let watch = Command::new(common::snap_bin())
        .arg("--store")
        .arg(&store)
        .args(["watch", "--interval-ms", "100"])
        .arg(&db)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    // Another command holds the writer's lock for 1.5 s (as a take would).
    let held = Command::new("flock")
        .arg("-x")
        .arg(store.join("lock"))
        .args(["-c", "sleep 1.5"])
        .status()
        .unwrap();
    assert!(held.success());
    std::thread::sleep(Duration::from_millis(500));
    let done = w.kill();
    caught_up(&store, &db, &tmp.path().join("c"));
    unsafe { libc::kill(watch.id() as i32, libc::SIGTERM) };
    let out = watch.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("put off").count(), 1, "{err}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "a put-off look is not a failure: {err}"
    );
    let all = points(&store);
    let last = restored(
        &store,
        all.last().unwrap()["id"].as_str().unwrap(),
        &tmp.path().join("r"),
    );
    // The writer may be killed after a commit and before it printed it.
    assert!(last.unwrap() >= done.last().unwrap().0);
}

/// Waits (up to 20 s) until the newest point of `db` holds its last commit:
/// the watcher has caught up, so no test races its last look.
fn caught_up(store: &Path, db: &Path, scratch: &Path) {
    let want = ledger::check(db).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let newest = points(store)
            .into_iter()
            .rev()
            .find(|p| p["paths"][0] == db.to_str().unwrap());
        if let Some(p) = newest {
            if restored(store, p["id"].as_str().unwrap(), scratch) == Ok(want) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the watcher did not catch up with {}",
            db.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
