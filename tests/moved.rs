//! Content that moves inside a database: a migration that rewrites a
//! table into the pages it freed, as an FTS5 merge does with its segments. A point stores the new pages against the
//! units their content came from (deltas against several bases, store format 4), at a fraction
//! of what deltas against each unit's own previous version cost, and
//! restore, `verify --read-data` and a gc that forgets the point before it
//! read those deltas back bit for bit.

mod common;

use common::{points, snap_ok};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `n` words from a vocabulary of 3,000, drawn by `seed`.
fn words(seed: &mut u64, n: usize) -> String {
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            format!("w{}", *seed % 3000)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A table of 3,000 documents of about 500 bytes.
fn build(db: &Path) -> Connection {
    let c = Connection::open(db).unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    c.execute_batch("CREATE TABLE docs(id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    c.execute_batch("BEGIN").unwrap();
    for _ in 0..3000 {
        c.execute("INSERT INTO docs(body) VALUES (?1)", [words(&mut seed, 80)])
            .unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
    c
}

/// The migration: the rows set aside, the table emptied and filled again
/// in another order (its pages freed and reused), in one transaction.
const MIGRATION: &str = "BEGIN;
    CREATE TEMP TABLE kept AS SELECT id, body FROM docs;
    DELETE FROM docs;
    INSERT INTO docs(id, body) SELECT id, body FROM kept ORDER BY id % 7, id;
    DROP TABLE kept;
    COMMIT;";

fn wait_points(store: &Path, n: usize, watcher: &mut Child) -> Vec<serde_json::Value> {
    let start = Instant::now();
    loop {
        let p = if store.join("config").exists() {
            points(store)
        } else {
            Vec::new()
        };
        if p.len() >= n {
            return p;
        }
        assert!(watcher.try_wait().unwrap().is_none(), "the watcher stopped");
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} points",
            p.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The rows of `docs`, in order, and the database's integrity check.
fn content(db: &Path) -> (Vec<String>, String) {
    let c = Connection::open(db).unwrap();
    let mut s = c.prepare("SELECT body FROM docs ORDER BY rowid").unwrap();
    let rows = s
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let check = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    (rows, check)
}

fn watch(store: &Path, db: &Path, envs: &[(&str, &str)]) -> Child {
    Command::new(common::snap_bin())
        .envs(envs.iter().copied())
        .arg("--store")
        .arg(store)
        .args(["watch", "--interval-ms", "100"])
        .arg(db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A watched database migrated: the store, the database, and the two
/// points (before and after the migration).
fn merged(dir: &Path, envs: &[(&str, &str)]) -> (PathBuf, PathBuf, Vec<serde_json::Value>) {
    let (db, store) = (dir.join("app.db"), dir.join("store"));
    let c = build(&db);
    let mut w = watch(&store, &db, envs);
    wait_points(&store, 1, &mut w);
    c.execute_batch(MIGRATION).unwrap();
    let p = wait_points(&store, 2, &mut w);
    let _ = w.kill();
    let _ = w.wait();
    (store, db, p)
}

#[test]
fn a_rebuilt_table_is_stored_against_the_pages_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let (one, many) = (dir.path().join("one"), dir.path().join("many"));
    std::fs::create_dir_all(&one).unwrap();
    std::fs::create_dir_all(&many).unwrap();
    let (_, _, alone) = merged(&one, &[("SNAP_BENCH_ONE_BASE", "1")]);
    let (store, db, p) = merged(&many, &[]);
    let cost = |p: &[serde_json::Value]| p[1]["stats"]["added"].as_u64().unwrap();
    eprintln!(
        "the migration's point: {} bytes, {} against one base each",
        cost(&p),
        cost(&alone)
    );
    assert!(
        cost(&p) * 2 < cost(&alone),
        "the migration stored {} bytes against several bases, {} against one",
        cost(&p),
        cost(&alone)
    );
    let live = content(&db);
    assert_eq!(live.1, "ok");
    let restored = |id: &str, name: &str| {
        let out = dir.path().join(name);
        snap_ok(&store, &["restore", id, "--to", out.to_str().unwrap()]);
        content(&out.join("app.db"))
    };
    let (first, last) = (p[0]["id"].as_str().unwrap(), p[1]["id"].as_str().unwrap());
    assert_eq!(restored(last, "r1"), live);
    snap_ok(&store, &["verify", "--read-data"]);
    // The new pages' bases are units of the first point only: a gc that
    // forgets it keeps them.
    snap_ok(&store, &["forget", first]);
    snap_ok(
        &store,
        &["gc", "--points", "within=24h", "--repack-threshold", "0"],
    );
    assert_eq!(points(&store).len(), 1);
    snap_ok(&store, &["verify", "--read-data"]);
    assert_eq!(restored(last, "r2"), live);
}

// The watcher killed at random moments while it stores a migration's point
// (deltas against several bases half written): the store verifies, every
// point restores to the database before or after the migration, and the
// next watcher records it (SNAP_MOVED_KILLS rounds, default 6).
#[test]
fn a_watcher_killed_while_it_stores_moved_content_breaks_nothing() {
    let rounds: u64 = std::env::var("SNAP_MOVED_KILLS").map_or(6, |v| v.parse().unwrap());
    for k in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let (db, store) = (dir.path().join("app.db"), dir.path().join("store"));
        let c = build(&db);
        let before = content(&db);
        let mut w = watch(&store, &db, &[]);
        wait_points(&store, 1, &mut w);
        c.execute_batch(MIGRATION).unwrap();
        let after = content(&db);
        std::thread::sleep(Duration::from_millis(k * 53 % 300));
        let _ = w.kill();
        let _ = w.wait();
        snap_ok(&store, &["verify", "--read-data"]);
        let n = points(&store).len();
        let mut w = watch(&store, &db, &[]);
        let p = wait_points(&store, n + 1, &mut w);
        let _ = w.kill();
        let _ = w.wait();
        snap_ok(&store, &["verify", "--read-data"]);
        for (i, point) in p.iter().enumerate() {
            let out = dir.path().join(format!("r{i}"));
            let id = point["id"].as_str().unwrap();
            snap_ok(&store, &["restore", id, "--to", out.to_str().unwrap()]);
            let got = content(&out.join("app.db"));
            assert!(
                got == before || got == after,
                "round {k}: point {i} never existed"
            );
        }
        let last = dir.path().join("last");
        let id = p.last().unwrap()["id"].as_str().unwrap();
        snap_ok(&store, &["restore", id, "--to", last.to_str().unwrap()]);
        assert_eq!(content(&last.join("app.db")), after, "round {k}");
    }
}
