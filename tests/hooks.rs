//! The documented hook recipes (`examples/hooks/`, quoted in the README), run
//! as written: an npm script, an Alembic env.py snippet, and the upgrade
//! guard-rail that rolls a data directory back when the upgrade fails.

mod common;
use common::*;
use rusqlite::Connection;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hooks")
}

/// A shell in `dir` with `snap` on PATH and the store in `store`.
fn sh(dir: &Path, store: &Path, script: &str) -> std::process::Output {
    let bin_dir = Path::new(snap_bin()).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("PATH", path)
        .env("SNAP_STORE", store)
        .output()
        .unwrap()
}

fn make_db(path: &Path) {
    let c = Connection::open(path).unwrap();
    c.execute_batch("PRAGMA journal_mode=wal; CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users(name) VALUES ('ada'), ('grace');").unwrap();
}

#[test]
fn npm_script_backup_before_migration() {
    let dir = tempfile::tempdir().unwrap();
    let (project, store) = (dir.path().join("project"), dir.path().join("store"));
    fs::create_dir(&project).unwrap();
    let pkg: serde_json::Value =
        serde_json::from_slice(&fs::read(examples().join("package.json")).unwrap()).unwrap();
    let backup = pkg["scripts"]["db:backup"].as_str().unwrap();
    // A fresh checkout: no database yet, and the migration must not fail.
    let out = sh(&project, &store, backup);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to back up"));
    make_db(&project.join("db.sqlite"));
    assert!(sh(&project, &store, backup).status.success());
    let list = snap_json(&store, &["list", "--tag", "pre-migration"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["databases"][0]["check"], "ok");
    // Something else is snapshotted into the same store later: `latest`
    // alone would now mean that, and verify would say "ok" about it.
    let other = dir.path().join("uploads");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("a.txt"), "not the database").unwrap();
    snap_ok(&store, &["take", other.to_str().unwrap()]);
    let verify = sh(
        &project,
        &store,
        pkg["scripts"]["db:backup:verify"].as_str().unwrap(),
    );
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let said = String::from_utf8_lossy(&verify.stdout);
    assert!(
        said.contains("1 snapshot,") && said.contains("1 database checked"),
        "db:backup:verify checked the database's snapshot: {said}"
    );
}

#[test]
fn alembic_env_snippet() {
    let dir = tempfile::tempdir().unwrap();
    let (project, store) = (dir.path().join("project"), dir.path().join("store"));
    fs::create_dir(&project).unwrap();
    let snippet = examples().join("alembic_env_snippet.py");
    let run = || sh(&project, &store, &format!("python3 {}", snippet.display()));
    assert!(
        run().status.success(),
        "missing database must not fail the migration"
    );
    make_db(&project.join("app.db"));
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        snap_json(&store, &["list", "--tag", "pre-migration"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn upgrade_guard_rail_rolls_back_a_failed_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = (dir.path().join("data"), dir.path().join("store"));
    fs::create_dir(&data).unwrap();
    make_db(&data.join("app.db"));
    fs::write(data.join("config.json"), b"{\"version\": 1}").unwrap();
    let before = fingerprint(&data);
    let script = examples().join("upgrade.sh");
    // A failing upgrade that has already damaged the data.
    let bad = dir.path().join("bad-upgrade.sh");
    fs::write(&bad, format!(
        "echo 2 > {d}/config.json\npython3 -c \"import sqlite3; c = sqlite3.connect('{d}/app.db'); c.execute('DROP TABLE users'); c.commit()\"\nexit 1\n",
        d = data.display()
    )).unwrap();
    let out = sh(
        dir.path(),
        &store,
        &format!(
            "bash {} {} bash {}",
            script.display(),
            data.display(),
            bad.display()
        ),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fingerprint(&data).get(Path::new("config.json")),
        before.get(Path::new("config.json"))
    );
    let c = Connection::open(data.join("app.db")).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2, "the database was not rolled back");
    // The rollback can be undone: what the failed upgrade left is a snapshot.
    assert_eq!(
        snap_json(&store, &["list", "--tag", "pre-restore"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // A successful upgrade keeps its changes.
    let good = dir.path().join("good-upgrade.sh");
    fs::write(&good, format!("echo 3 > {}/config.json\n", data.display())).unwrap();
    let out = sh(
        dir.path(),
        &store,
        &format!(
            "bash {} {} bash {}",
            script.display(),
            data.display(),
            good.display()
        ),
    );
    assert!(out.status.success());
    assert_eq!(
        fs::read_to_string(data.join("config.json")).unwrap().trim(),
        "3"
    );
    assert_eq!(
        snap_json(&store, &["list", "--tag", "pre-upgrade"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
