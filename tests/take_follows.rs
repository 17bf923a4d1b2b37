//! A take of a watched database follows the watcher's newest point through
//! the log: it reads what changed since, not the whole file, and what it
//! stores is the database at one commit, the commits before the take all in
//! it. Where the log cannot be followed (cut by a TRUNCATE checkpoint, or
//! `--no-follow`) the take reads everything, as before.

mod common;

use common::{ledger, snap_json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Not a test: the writer process the test below starts.
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

fn watcher(store: &Path, db: &Path) -> Child {
    Command::new(common::snap_bin())
        .arg("--store")
        .arg(store)
        .args(["watch", "--interval-ms", "200"])
        .arg(db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Takes `db` with `extra` args; (snapshot id, bytes read, size, check, when
/// it started).
fn take(store: &Path, db: &Path, extra: &[&str]) -> (String, u64, u64, String, f64) {
    let started = ledger::now();
    let args = [&["take", db.to_str().unwrap()][..], extra].concat();
    let r = snap_json(store, &args);
    let s = &r["stats"];
    let check = r["databases"][0]["check"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let id = r["id"].as_str().unwrap().to_string();
    (
        id,
        s["read"].as_u64().unwrap(),
        s["size"].as_u64().unwrap(),
        check,
        started,
    )
}

/// Restores snapshot `id` and checks the ledger there: its last commit.
fn restored(store: &Path, id: &str, to: &Path) -> i64 {
    let _ = std::fs::remove_dir_all(to);
    common::snap_ok(store, &["restore", id, "--to", to.to_str().unwrap()]);
    ledger::check(&to.join("ledger.db")).unwrap_or_else(|e| panic!("take {id}: {e}"))
}

#[test]
fn a_take_of_a_watched_database_reads_what_changed_and_holds_every_earlier_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let db = tmp.path().join("ledger.db");
    let mut w = ledger::start("writer_process", &db, 200, "bulk");
    std::thread::sleep(Duration::from_millis(300));
    let mut watch = watcher(&store, &db);
    // The database grows (a 2 MB bulk insert every 500 commits).
    std::thread::sleep(Duration::from_secs(6));
    let mut takes = Vec::new();
    for k in 0..6 {
        let extra: &[&str] = if k % 2 == 0 { &[] } else { &["--no-check"] };
        let t = take(&store, &db, extra);
        assert!(
            t.1 * 4 < t.2,
            "take {k} read {} of {} bytes: it did not follow",
            t.1,
            t.2
        );
        assert_eq!(t.3, if k % 2 == 0 { "ok" } else { "not checked" });
        takes.push(t);
        std::thread::sleep(Duration::from_millis(400 + k * 137));
    }
    let full = take(&store, &db, &["--no-follow"]);
    assert!(full.1 >= full.2, "--no-follow reads everything");
    takes.push(full);
    // The log cut under the watcher: the next take cannot follow it.
    let _ = watch.kill();
    let _ = watch.wait();
    let c = rusqlite::Connection::open(&db).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    let (busy, _, _): (i64, i64, i64) = c
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    drop(c);
    let cut = take(&store, &db, &[]);
    if busy == 0 {
        assert!(cut.1 >= cut.2, "after a TRUNCATE the take reads everything");
    }
    takes.push(cut);
    let commits = w.kill();
    for (id, _, _, _, started) in &takes {
        let got = restored(&store, id, &tmp.path().join("r"));
        let due = commits
            .iter()
            .filter(|(_, t)| t <= started)
            .map(|(n, _)| *n)
            .max()
            .unwrap();
        assert!(
            got >= due,
            "take {id} holds commit {got}, but {due} completed before it began"
        );
    }
    common::snap_ok(&store, &["verify"]);
}
