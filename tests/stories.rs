//! The README's "When something went wrong" stories, run exactly as written:
//! each `<!-- story: NAME -->` block is given to bash in a directory laid out
//! like its story, with the real `snap` on the PATH, and what it promised is
//! then checked.

mod common;
use common::recruit::{bad_migration_then_new_rows, recruit_db};
use common::*;
use rusqlite::Connection;
use std::fs;
use std::path::Path;
use std::process::Command;

/// The shell block that follows `<!-- story: NAME -->` in the README.
fn story(name: &str) -> String {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let marker = format!("<!-- story: {name} -->");
    let rest = &readme[readme.find(&marker).expect("story in README") + marker.len()..];
    let start = rest.find("```sh\n").expect("a sh block") + 6;
    let end = rest[start..].find("```").unwrap();
    rest[start..start + end].to_string()
}

/// Runs a story's commands in `dir` with `store` as the default store.
fn run(name: &str, dir: &Path, store: &Path) -> String {
    let bin = Path::new(snap_bin()).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &story(name)])
        .current_dir(dir)
        .env("PATH", path)
        .env("SNAP_STORE", store)
        .env("HOME", dir)
        .env_remove("SNAP_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "story {name}:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn count(db: &Path, table: &str) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn bad_migration() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    fs::create_dir_all(dir.path().join("recruit")).unwrap();
    let db = dir.path().join("recruit/recruit.db");
    recruit_db(&db);
    snap_ok(&store, &["init"]);
    snap_ok(
        &store,
        &["take", db.to_str().unwrap(), "--tag", "pre-migration"],
    );
    bad_migration_then_new_rows(&db);
    let said = run("bad-migration", dir.path(), &store);
    assert!(
        said.contains("candidates") && said.contains("35 removed"),
        "{said}"
    );
    assert_eq!(count(&db, "candidates"), 37);
    assert_eq!(count(&db, "evaluations"), 110);
    assert_eq!(count(&db, "messages"), 161);
}

#[test]
fn deleted_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    let db = data.join("app.db");
    let c = Connection::open(&db).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=wal; CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3);",
    )
    .unwrap();
    fs::write(data.join("notes.txt"), "v1").unwrap();
    snap_ok(&store, &["init"]);
    snap_ok(&store, &["take", data.to_str().unwrap()]);
    c.execute_batch("INSERT INTO t VALUES (4)").unwrap();
    fs::write(data.join("notes.txt"), "v2").unwrap();
    // rm app.db: its -wal stays behind, with frames that do not belong to a restored file.
    fs::remove_file(&db).unwrap();
    drop(c);
    fs::write(data.join("app.db-wal"), Rng(3).bytes(8192)).unwrap();
    run("deleted-file", dir.path(), &store);
    assert_eq!(count(&db, "t"), 3);
    assert!(
        !data.join("app.db-wal").exists(),
        "no stale -wal beside the restored database"
    );
    assert_eq!(
        fs::read_to_string(data.join("notes.txt")).unwrap(),
        "v2",
        "only app.db came back"
    );
}

#[test]
fn failed_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("schema-version"), "1").unwrap();
    fs::write(data.join("items.json"), "[1,2,3]").unwrap();
    snap_ok(&store, &["init"]);
    snap_ok(
        &store,
        &["take", data.to_str().unwrap(), "--tag", "pre-upgrade"],
    );
    // The upgrade converts half of it, adds a file, and dies.
    fs::write(data.join("schema-version"), "2").unwrap();
    fs::write(data.join("items.v2.bin"), "half").unwrap();
    let said = run("failed-upgrade", dir.path(), &store);
    assert!(said.contains("pre-upgrade"));
    assert_eq!(
        fs::read_to_string(data.join("schema-version")).unwrap(),
        "1"
    );
    assert!(
        !data.join("items.v2.bin").exists(),
        "what the upgrade added is removed"
    );
    let undo = snap_json(&store, &["list", "--tag", "pre-restore"]);
    assert_eq!(
        undo.as_array().unwrap().len(),
        1,
        "and kept in the undo snapshot"
    );
}
