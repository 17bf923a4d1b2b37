//! What restic and borg users reach for first, with the real binary: a
//! directory as a tar stream, restore filters, a dry-run take, stats and
//! tags after the fact.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

fn data(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    make_tree(&data, 11, 2);
    fs::create_dir_all(data.join("logs")).unwrap();
    fs::write(data.join("logs/app.log"), b"log line\n").unwrap();
    fs::write(data.join("notes.txt"), b"notes\n").unwrap();
    fs::hard_link(data.join("notes.txt"), data.join("notes-link.txt")).unwrap();
    let db = rusqlite::Connection::open(data.join("app.db")).unwrap();
    db.execute_batch(
        "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3);",
    )
    .unwrap();
    data
}

#[test]
fn dump_tar_streams_a_directory_that_tar_extracts_as_restore_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let data = data(dir.path());
    snap_ok(&store, &["take", data.to_str().unwrap()]);
    let restored = dir.path().join("restored");
    snap_ok(
        &store,
        &["restore", "latest", "--to", restored.to_str().unwrap()],
    );
    let out = dir.path().join("untarred");
    fs::create_dir(&out).unwrap();
    // snap dump latest data --tar | tar x -C out
    let mut dump = Command::new(snap_bin())
        .args(["dump", "latest", "data", "--tar"])
        .env("SNAP_STORE", &store)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let tar = Command::new("tar")
        .args(["x", "-C", out.to_str().unwrap()])
        .stdin(dump.stdout.take().unwrap())
        .status()
        .unwrap();
    assert!(tar.success());
    assert!(dump.wait().unwrap().success());
    // The same files, modes and links as a restore; times to the second
    // (a tar header's resolution).
    assert_eq!(shape(&out.join("data")), shape(&restored.join("data")));
    let meta = |p: &Path| fs::symlink_metadata(p).unwrap();
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (out.join("data/notes.txt"), out.join("data/notes-link.txt"));
    assert_eq!(meta(&a).ino(), meta(&b).ino(), "a hard link stays one");
    assert_eq!(
        meta(&out.join("data/notes.txt")).mtime(),
        meta(&data.join("notes.txt")).mtime()
    );
    // The database is its image: sqlite opens it.
    let db = rusqlite::Connection::open(out.join("data/app.db")).unwrap();
    let n: i64 = db
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
    // `/` is every root; a missing path is exit 2 and writes nothing.
    let all = snap(&store, &["dump", "latest", "/", "--tar"]);
    assert!(all.status.success());
    assert!(all.stdout.len() > 1024);
    let missing = snap(&store, &["dump", "latest", "data/nope", "--tar"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(missing.stdout.is_empty());
}

#[test]
fn restore_include_and_exclude_pick_what_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let data = data(dir.path());
    snap_ok(&store, &["take", data.to_str().unwrap()]);
    let only = dir.path().join("only");
    snap_ok(
        &store,
        &[
            "restore",
            "latest",
            "--to",
            only.to_str().unwrap(),
            "--include",
            "*.txt",
        ],
    );
    let files: Vec<_> = walk(&only);
    assert!(files.iter().all(|p| p.ends_with(".txt")), "{files:?}");
    assert!(files.iter().any(|p| p.ends_with("data/notes.txt")));
    assert!(
        !only.join("data/logs").exists(),
        "a directory with nothing included was created"
    );
    let without = dir.path().join("without");
    snap_ok(
        &store,
        &[
            "restore",
            "latest",
            "--to",
            without.to_str().unwrap(),
            "--exclude",
            "data/logs",
            "--exclude",
            "*.db",
        ],
    );
    assert!(!without.join("data/logs").exists());
    assert!(!without.join("data/app.db").exists());
    assert!(without.join("data/notes.txt").exists());
    // Matching nothing is an error that writes nothing; filters do not go in place.
    let none = dir.path().join("none");
    let out = snap(
        &store,
        &[
            "restore",
            "latest",
            "--to",
            none.to_str().unwrap(),
            "--include",
            "zzz*",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!none.exists());
    let out = snap(
        &store,
        &["restore", "latest", "--in-place", "--include", "*.txt"],
    );
    assert_eq!(out.status.code(), Some(2));
}

/// `fingerprint` with times cut to whole seconds.
fn shape(root: &Path) -> Vec<(std::path::PathBuf, String)> {
    fingerprint(root)
        .into_iter()
        .map(|(p, v)| {
            let mut parts: Vec<String> = v.split(' ').map(str::to_string).collect();
            if parts[0] == "file" || parts[0] == "dir" {
                let ns: i64 = parts[2].parse().unwrap();
                parts[2] = ns.div_euclid(1_000_000_000).to_string();
            }
            (p, parts.join(" "))
        })
        .collect()
}

fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir(root).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.to_string_lossy().into_owned());
        }
    }
    out
}

#[test]
fn a_dry_run_take_lists_what_it_would_read_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let data = data(dir.path());
    // Without a store, none is created.
    let dry = snap_json(&store, &["take", data.to_str().unwrap(), "--dry-run"]);
    assert!(!store.exists(), "a dry run created the store");
    assert_eq!(dry["dry_run"], true);
    assert!(dry["would_read"].as_array().unwrap().len() > 5);
    snap_ok(&store, &["take", data.to_str().unwrap()]);
    fs::write(data.join("notes.txt"), vec![b'n'; 200_000]).unwrap();
    // What a store holds (the lock files are any reader's).
    let held = || {
        let mut f = fingerprint(&store);
        f.retain(|p, _| {
            !p.starts_with("lock") && !p.starts_with("lock.readers") && p != Path::new("")
        });
        f
    };
    let before = held();
    let dry = snap_json(&store, &["take", data.to_str().unwrap(), "--dry-run"]);
    assert_eq!(held(), before, "a dry run changed the store");
    let read: Vec<&str> = dry["would_read"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    // Only what changed (and the database, which is always captured).
    assert!(read.iter().any(|p| p.ends_with("notes.txt")), "{read:?}");
    assert!(!read.iter().any(|p| p.ends_with("app.log")), "{read:?}");
    let estimate = dry["stats"]["added"].as_u64().unwrap();
    // The estimate is the take's own compression, before the index.
    let took = snap_json(&store, &["take", data.to_str().unwrap()]);
    let packs = took["stats"]["added"].as_u64().unwrap();
    assert!(
        estimate > 0 && estimate <= packs + 4096,
        "{estimate} against {packs}"
    );
    assert_eq!(snap_json(&store, &["list"]).as_array().unwrap().len(), 2);
}

#[test]
fn stats_count_the_store_per_snapshot_day_and_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let data = data(dir.path());
    for (i, day) in [
        "2026-12-01T10:00:00Z",
        "2026-12-01T18:00:00Z",
        "2026-12-02T10:00:00Z",
    ]
    .iter()
    .enumerate()
    {
        let db = rusqlite::Connection::open(data.join("app.db")).unwrap();
        db.execute("INSERT INTO t VALUES (?1)", [i as i64]).unwrap();
        drop(db);
        snap_ok(&store, &["take", data.to_str().unwrap(), "--time", day]);
    }
    let svg = dir.path().join("growth.svg");
    let s = snap_json(
        &store,
        &["stats", "--databases", "--svg", svg.to_str().unwrap()],
    );
    assert_eq!(s["snapshots"], 3);
    assert_eq!(s["per_snapshot"].as_array().unwrap().len(), 3);
    let days = s["per_day"].as_array().unwrap();
    assert_eq!(days.len(), 2);
    assert_eq!(days[0]["snapshots"], 2);
    let logical = s["logical"].as_u64().unwrap();
    let stored = s["stored"].as_u64().unwrap();
    let packs: u64 = pack_files(&store)
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(s["pack_bytes"].as_u64().unwrap(), packs);
    assert!(
        logical > stored,
        "three near-identical snapshots deduplicate"
    );
    let db = &s["per_database"][0];
    assert_eq!(db["path"], "data/app.db");
    assert_eq!(db["snapshots"], 3);
    assert!(db["stored"].as_u64().unwrap() > 0);
    // No policy configured: gc would keep everything and free nothing.
    assert_eq!(s["gc_would_forget"], 0);
    let text = fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("<polyline"));
    let human = snap_ok(&store, &["stats"]);
    assert!(human.contains("stored bytes over time"), "{human}");
}

#[test]
fn tags_change_after_the_fact_through_a_new_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let data = data(dir.path());
    let old = snap_json(&store, &["take", data.to_str().unwrap(), "--tag", "daily"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = snap_json(
        &store,
        &["tag", &old[..12], "--add", "keep", "--remove", "daily"],
    );
    let new = r[0]["new"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(r[0]["tags"], serde_json::json!(["keep"]));
    let list = snap_json(&store, &["list"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "the old record is gone");
    assert_eq!(list[0]["id"], new.as_str());
    assert_eq!(list[0]["tags"], serde_json::json!(["keep"]));
    // The same snapshot: it restores, verifies, and selects by its new tag.
    let out = dir.path().join("out");
    snap_ok(
        &store,
        &[
            "restore",
            "latest",
            "--tag",
            "keep",
            "--to",
            out.to_str().unwrap(),
        ],
    );
    let files = |p: &Path| {
        let mut f = fingerprint(p);
        f.remove(Path::new("")); // the live directory's time moved with the capture
        f
    };
    assert_eq!(files(&out.join("data")), files(&data));
    snap_ok(&store, &["verify"]);
    let same = snap_json(&store, &["tag", &new[..12], "--add", "keep"]);
    assert_eq!(
        same[0]["new"], same[0]["old"],
        "nothing to change writes nothing"
    );
    let bad = snap(&store, &["tag", &new[..12], "--add", "a,b"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn a_corrupt_record_is_named_by_stats_and_find_never_silently_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let data = data(dir.path());
    snap_ok(&store, &["take", data.to_str().unwrap()]);
    snap_ok(&store, &["take", data.to_str().unwrap(), "--tag", "second"]);
    let record = fs::read_dir(store.join("snapshots"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let mut bytes = fs::read(&record).unwrap();
    bytes[10] ^= 1;
    fs::write(&record, bytes).unwrap();
    let out = snap(&store, &["--json", "stats", "--no-gc"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("corrupt"), "{}", stderr(&out));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["snapshots"], 1);
    assert_eq!(s["bad_records"].as_array().unwrap().len(), 1);
    let out = snap(&store, &["find", "notes.txt"]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("not searched"), "{}", stderr(&out));
}
