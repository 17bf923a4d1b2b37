//! The upgrade story with a plain `INTEGER PRIMARY KEY`: once a cascade
//! has deleted every candidate, new candidates take ids 1..N again. snap
//! used to put the old evaluations back under the new people
//! (`(1,'New 50',1,2)`), report `foreign keys: ok`, and `diff --live`
//! called the reused keys "changed". Every lost row must come back under
//! its own parent, or be reported; none may be attached to another.

mod common;
use common::*;
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The recruit database with plain integer keys (no AUTOINCREMENT).
fn plain_keys_db(path: &Path) {
    let c = Connection::open(path).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=wal;
         CREATE TABLE candidates(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE evaluations(id INTEGER PRIMARY KEY,
             candidate_id INTEGER NOT NULL REFERENCES candidates(id) ON DELETE CASCADE, score INTEGER);
         CREATE TABLE messages(id INTEGER PRIMARY KEY,
             evaluation_id INTEGER REFERENCES evaluations(id) ON DELETE CASCADE, body TEXT);
         CREATE TABLE alembic_version(version_num TEXT PRIMARY KEY);
         INSERT INTO alembic_version VALUES ('r1');",
    )
    .unwrap();
    let tx = c.unchecked_transaction().unwrap();
    for i in 1..=35 {
        tx.execute(
            "INSERT INTO candidates(name) VALUES (?1)",
            [format!("old {i}")],
        )
        .unwrap();
    }
    for i in 0..108 {
        tx.execute(
            "INSERT INTO evaluations(candidate_id, score) VALUES (?1, ?2)",
            (i % 35 + 1, i),
        )
        .unwrap();
    }
    for i in 0..160 {
        tx.execute(
            "INSERT INTO messages(evaluation_id, body) VALUES (?1, ?2)",
            (i % 108 + 1, format!("old message {i}")),
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

/// The application's transaction: a new candidate (taking the next free
/// id), with an evaluation and a message.
fn new_candidate(c: &Connection, n: u32) {
    let tx = c.unchecked_transaction().unwrap();
    tx.execute(
        "INSERT INTO candidates(name) VALUES (?1)",
        [format!("new {n}")],
    )
    .unwrap();
    let cand = tx.last_insert_rowid();
    tx.execute(
        "INSERT INTO evaluations(candidate_id, score) VALUES (?1, -1)",
        [cand],
    )
    .unwrap();
    let eval = tx.last_insert_rowid();
    tx.execute(
        "INSERT INTO messages(evaluation_id, body) VALUES (?1, ?2)",
        (eval, format!("new message {n}")),
    )
    .unwrap();
    tx.commit().unwrap();
}

fn app(db: &Path) -> Connection {
    let c = Connection::open(db).unwrap();
    c.busy_timeout(Duration::from_secs(30)).unwrap();
    c.execute_batch("PRAGMA foreign_keys=ON").unwrap();
    c
}

/// The application keeps writing (from candidate `from` on) until told to
/// stop; returns the last candidate it wrote.
fn app_writer(db: &Path, from: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u32> {
    let db = db.to_path_buf();
    std::thread::spawn(move || {
        let c = app(&db);
        let mut n = from;
        while !stop.load(Ordering::Relaxed) || n < from + 20 {
            n += 1;
            new_candidate(&c, n);
            std::thread::sleep(Duration::from_millis(5));
        }
        n
    })
}

/// Every old row in the live database, as (its score or body) -> the name
/// of the candidate it hangs from now.
fn old_rows(db: &Path) -> (BTreeMap<i64, String>, BTreeMap<String, String>) {
    let c = Connection::open(db).unwrap();
    let evals = c
        .prepare(
            "SELECT e.score, c.name FROM evaluations e JOIN candidates c ON c.id = e.candidate_id
             WHERE e.score >= 0",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let messages = c
        .prepare(
            "SELECT m.body, c.name FROM messages m JOIN evaluations e ON e.id = m.evaluation_id
             JOIN candidates c ON c.id = e.candidate_id WHERE m.body LIKE 'old%'",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    (evals, messages)
}

/// An old row is attached to the candidate it was created under.
fn all_under_their_own_parents(db: &Path) -> (usize, usize) {
    let (evals, messages) = old_rows(db);
    for (score, name) in &evals {
        assert_eq!(
            name,
            &format!("old {}", score % 35 + 1),
            "evaluation {score} is attached to another candidate"
        );
    }
    for (body, name) in &messages {
        let i: i64 = body.trim_start_matches("old message ").parse().unwrap();
        let score = i % 108;
        assert_eq!(
            name,
            &format!("old {}", score % 35 + 1),
            "{body} is attached to another candidate"
        );
    }
    (evals.len(), messages.len())
}

fn table<'a>(r: &'a serde_json::Value, key: &str, name: &str) -> &'a serde_json::Value {
    r[key]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == name)
        .unwrap_or_else(|| panic!("no table {name} in {r}"))
}

#[test]
fn reused_keys_never_get_the_old_rows_and_remap_brings_every_row_back() {
    let dir = tempfile::tempdir().unwrap();
    let (db, store) = (dir.path().join("recruit.db"), dir.path().join("store"));
    plain_keys_db(&db);
    let pre = snap_json(
        &store,
        &["take", db.to_str().unwrap(), "--tag", "pre-migration"],
    );
    let pre = pre["id"].as_str().unwrap().to_string();
    let migration = Connection::open(&db).unwrap();
    migration
        .execute_batch(
            "PRAGMA foreign_keys=ON; DELETE FROM candidates; UPDATE alembic_version SET version_num='r2';",
        )
        .unwrap();
    // The application has written 20 new candidates since: ids 1..20 again.
    let c = app(&db);
    for n in 1..=20 {
        new_candidate(&c, n);
    }

    // diff tells the reused keys from changed rows.
    let d = snap_json(&store, &["diff", &pre, "--live"]);
    let cands = &d["databases"][0]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "candidates")
        .unwrap()
        .clone();
    let reused = cands["reused"].as_u64().unwrap();
    assert!(reused > 0, "{d}");
    assert_eq!(
        cands["changed"], 0,
        "a reused key is not a changed row: {d}"
    );
    assert_eq!(cands["removed"].as_u64().unwrap() + reused, 35, "{d}");

    // Without --remap: nothing lands under a new person.
    let r = snap_json(&store, &["recover", "latest", "--db", db.to_str().unwrap()]);
    assert!(
        table(&r, "tables", "candidates")["reused"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        table(&r, "tables", "evaluations")["blocked"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(r["left_alone"][0], "alembic_version", "{r}");
    assert!(r["pre_recover"].is_string());
    let (evals, _) = all_under_their_own_parents(&db);
    assert!(
        evals < 108,
        "some evaluations had to wait for their parents"
    );

    // With --remap, while the application writes: every lost row comes
    // back, under its own parent.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = app_writer(&db, 20, stop.clone());
    let r = snap_json(
        &store,
        &["recover", &pre, "--db", db.to_str().unwrap(), "--remap"],
    );
    let cands = table(&r, "tables", "candidates");
    assert!(cands["remapped"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(
        cands["new_keys"].as_array().unwrap().len() as u64,
        cands["remapped"].as_u64().unwrap()
    );
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert_eq!(r["foreign_key_check"], "ok");
    assert_eq!(all_under_their_own_parents(&db), (108, 160));
    let c = Connection::open(&db).unwrap();
    let olds: i64 = c
        .query_row(
            "SELECT count(*) FROM candidates WHERE name LIKE 'old%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let news: i64 = c
        .query_row(
            "SELECT count(*) FROM candidates WHERE name LIKE 'new%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        (olds, news),
        (35, written as i64),
        "the app's rows are all kept"
    );
    let version: String = c
        .query_row("SELECT version_num FROM alembic_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, "r2", "migration bookkeeping is left alone");
}

// The hostile tester's case: a table without a primary key after VACUUM
// (rowids renumbered). Matching by rowid put 30 rows back twice and left
// 30 missing; rows are matched by content, duplicates counted.
#[test]
fn a_table_without_a_key_is_recovered_by_content_after_vacuum() {
    let dir = tempfile::tempdir().unwrap();
    let (db, store) = (dir.path().join("log.db"), dir.path().join("store"));
    let c = Connection::open(&db).unwrap();
    c.execute_batch("CREATE TABLE log(msg TEXT, n INTEGER)")
        .unwrap();
    for i in 0..90 {
        c.execute(
            "INSERT INTO log VALUES (?1, ?2)",
            (format!("m{}", i % 60), i % 3),
        )
        .unwrap();
    }
    let want: Vec<(String, i64)> = rows(&c);
    snap_ok(&store, &["take", db.to_str().unwrap()]);
    c.execute_batch("DELETE FROM log WHERE rowid % 3 = 0; VACUUM;")
        .unwrap();
    let r = snap_json(&store, &["recover", "latest", "--db", db.to_str().unwrap()]);
    assert_eq!(table(&r, "tables", "log")["recovered"], 30, "{r}");
    assert_eq!(
        rows(&c),
        want,
        "every row once, as many times as it was there"
    );
    let again = snap_json(&store, &["recover", "latest", "--db", db.to_str().unwrap()]);
    assert!(
        again["pre_recover"].is_null(),
        "nothing to do takes no undo snapshot"
    );
}

fn rows(c: &Connection) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = c
        .prepare("SELECT msg, n FROM log")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    v.sort();
    v
}

// `--table` with a typo is an error that changes nothing (it used to exit
// 0 and record an undo snapshot); a table the live database lost is
// recreated from the snapshot's schema, with its rows.
#[test]
fn named_tables_must_exist_and_a_lost_one_is_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let (db, store) = (dir.path().join("app.db"), dir.path().join("store"));
    let c = Connection::open(&db).unwrap();
    c.execute_batch(
        "CREATE TABLE keep(id INTEGER PRIMARY KEY, v TEXT);
         CREATE TABLE lost(id INTEGER PRIMARY KEY, v TEXT UNIQUE);
         INSERT INTO lost VALUES (1,'a'),(2,'b');",
    )
    .unwrap();
    snap_ok(&store, &["take", db.to_str().unwrap()]);
    c.execute_batch("DROP TABLE lost").unwrap();
    let out = snap(
        &store,
        &[
            "recover",
            "latest",
            "--db",
            db.to_str().unwrap(),
            "--table",
            "nosuch",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuch is not in the snapshot"));
    let r = snap_json(&store, &["recover", "latest", "--db", db.to_str().unwrap()]);
    assert_eq!(r["only_in_snapshot"][0], "lost");
    assert!(r["pre_recover"].is_null());
    assert_eq!(snap_json(&store, &["list"]).as_array().unwrap().len(), 1);
    let r = snap_json(
        &store,
        &[
            "recover",
            "latest",
            "--db",
            db.to_str().unwrap(),
            "--table",
            "lost",
        ],
    );
    assert_eq!(table(&r, "tables", "lost")["recreated"], true);
    assert_eq!(table(&r, "tables", "lost")["recovered"], 2);
    let n: i64 = c
        .query_row("SELECT count(*) FROM lost", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
    let idx: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type='index' AND tbl_name='lost'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(idx, 1, "with its indexes");
}

// Trying a recovery on a copy first: `--db staging.db` used to fail with a
// selection error nobody gave; `--from` names the database in the snapshot.
#[test]
fn recover_into_a_copy_names_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let (db, store) = (dir.path().join("recruit.db"), dir.path().join("store"));
    plain_keys_db(&db);
    let id = snap_json(&store, &["take", db.to_str().unwrap()])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let staging = dir.path().join("staging.db");
    Connection::open(&db)
        .unwrap()
        .execute_batch(&format!(
            "PRAGMA foreign_keys=ON; DELETE FROM candidates WHERE id > 30; VACUUM INTO '{}';",
            staging.display()
        ))
        .unwrap();
    let out = snap(&store, &["recover", &id, "--db", staging.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("its databases: recruit.db"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = snap_json(
        &store,
        &[
            "recover",
            &id,
            "--db",
            staging.to_str().unwrap(),
            "--from",
            "recruit.db",
        ],
    );
    assert_eq!(r["source"], "recruit.db");
    assert_eq!(table(&r, "tables", "candidates")["recovered"], 5);
    let r = snap_json(
        &store,
        &[
            "recover",
            "latest",
            "--db",
            staging.to_str().unwrap(),
            "--from",
            db.to_str().unwrap(),
            "--dry-run",
        ],
    );
    assert_eq!(r["snapshot"], id.as_str());
}
