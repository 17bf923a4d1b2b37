//! Selection means what the README says: `latest:DIR` and `--path DIR` are
//! the snapshots that hold DIR (a snapshot of one file inside DIR does
//! not), `latest` passes over the undo snapshots snap takes itself, paths
//! inside a snapshot may be given as they were taken, and exit 3 means
//! corruption only.

mod common;
use common::*;
use rusqlite::Connection;
use std::fs;

fn id(v: &serde_json::Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

// After `snap take data/config.json`, `restore latest:./data --in-place
// --path data/app.db` exited 3 ("corrupt snapshot: a root is missing from
// its paths"), and `restore latest:./data --to full` restored only
// config.json and exited 0.
#[test]
fn latest_dir_is_the_newest_snapshot_that_holds_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = (dir.path().join("data"), dir.path().join("store"));
    fs::create_dir_all(&data).unwrap();
    let db = data.join("app.db");
    Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    fs::write(data.join("config.json"), "{}").unwrap();
    let whole = id(&snap_json(&store, &["take", data.to_str().unwrap()]));
    let one = id(&snap_json(
        &store,
        &["take", data.join("config.json").to_str().unwrap()],
    ));
    let latest_data = format!("latest:{}", data.display());
    let l = snap_json(&store, &["list", "--path", data.to_str().unwrap()]);
    assert_eq!(l.as_array().unwrap().len(), 1, "{l}");
    assert_eq!(l[0]["id"], whole.as_str());
    let l = snap_json(
        &store,
        &["list", "--path", data.join("config.json").to_str().unwrap()],
    );
    assert_eq!(l.as_array().unwrap().len(), 2, "both hold config.json");
    assert_eq!(l[1]["id"], one.as_str());

    Connection::open(&db)
        .unwrap()
        .execute_batch("INSERT INTO t VALUES (2);")
        .unwrap();
    let r = snap_json(
        &store,
        &[
            "restore",
            &latest_data,
            "--in-place",
            "--path",
            "data/app.db",
        ],
    );
    assert_eq!(r["snapshot"], whole.as_str());
    let n: i64 = Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    let full = dir.path().join("full");
    snap_ok(
        &store,
        &["restore", &latest_data, "--to", full.to_str().unwrap()],
    );
    assert!(full.join("data/app.db").exists() && full.join("data/config.json").exists());

    // The in-place restore took an undo snapshot; `latest` is still the
    // snapshot the user took, unless the undo's tag is asked for.
    let l = snap_json(&store, &["list"]);
    assert_eq!(l.as_array().unwrap().len(), 3);
    let v = snap_json(&store, &["verify", "latest"]);
    assert_eq!(v["report"]["snapshots"], 1);
    let ls = snap_json(&store, &["ls", &latest_data]);
    assert_eq!(ls[0]["path"], "data");
    let undo = snap_json(&store, &["list", "--tag", "pre-restore"])[0]["id"].clone();
    let out = snap_ok(&store, &["ls", "latest", "--tag", "pre-restore"]);
    assert!(out.contains("app.db"), "{out}");
    assert!(undo.is_string());
}

// `restore --in-place --path /ABSOLUTE/PATH` exited 3 "corrupt snapshot"
// on a store that verifies; `ls` rejected the original absolute path. A
// path as it was taken is accepted everywhere a path inside a snapshot is,
// and a path that is in no root is "not found" (exit 2), never corruption.
#[test]
fn paths_inside_a_snapshot_may_be_given_as_they_were_taken() {
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = (dir.path().join("data"), dir.path().join("store"));
    fs::create_dir_all(data.join("sub")).unwrap();
    fs::write(data.join("sub/f.txt"), "one").unwrap();
    snap_ok(&store, &["take", data.to_str().unwrap()]);
    let abs = data.join("sub/f.txt");
    let ls = snap_json(&store, &["ls", "latest", abs.to_str().unwrap()]);
    assert_eq!(ls[0]["path"], "data/sub/f.txt");
    assert_eq!(
        snap_ok(&store, &["dump", "latest", abs.to_str().unwrap()]),
        "one"
    );
    fs::write(&abs, "two").unwrap();
    snap_ok(
        &store,
        &[
            "restore",
            "latest",
            "--in-place",
            "--path",
            abs.to_str().unwrap(),
        ],
    );
    assert_eq!(fs::read_to_string(&abs).unwrap(), "one");
    let to = dir.path().join("to");
    snap_ok(
        &store,
        &[
            "restore",
            "latest",
            "--to",
            to.to_str().unwrap(),
            "--path",
            abs.to_str().unwrap(),
        ],
    );
    assert_eq!(fs::read_to_string(to.join("f.txt")).unwrap(), "one");
    for bad in ["elsewhere/f.txt", "/nowhere/f.txt"] {
        let out = snap(&store, &["restore", "latest", "--in-place", "--path", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("is not in the snapshot"), "{err}");
    }
    snap_ok(&store, &["verify", "--read-data"]);
}

// `diff --live` after `take --exclude '*.log'` reported every excluded
// file as added: the live side had a walker of its own, which ignored
// excludes (and the record did not keep them). One walk, and the record
// keeps its excludes.
#[test]
fn diff_live_walks_as_take_walks() {
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = (dir.path().join("data"), dir.path().join("store"));
    fs::create_dir_all(data.join("logs")).unwrap();
    fs::write(data.join("keep.txt"), "k").unwrap();
    fs::write(data.join("logs/app.log"), "noise").unwrap();
    snap_ok(
        &store,
        &["take", data.to_str().unwrap(), "--exclude", "*.log"],
    );
    fs::write(data.join("logs/more.log"), "more noise").unwrap();
    let d = snap_json(&store, &["diff", "latest", "--live"]);
    assert!(d["changes"].as_array().unwrap().is_empty(), "{d}");
    fs::write(data.join("new.txt"), "n").unwrap();
    let d = snap_json(&store, &["diff", "latest", "--live"]);
    assert_eq!(d["changes"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(d["changes"][0]["path"], "data/new.txt");
}

/// A chain of `depth` directories named `name`, made through short paths
/// (the real one is longer than PATH_MAX); returns the deepest's handle.
fn deep_chain(top: &std::path::Path, name: &str, depth: usize) -> std::fs::File {
    let mut here = std::fs::File::open(top).unwrap();
    for _ in 0..depth {
        let at = format!(
            "/proc/self/fd/{}/{name}",
            std::os::unix::io::AsRawFd::as_raw_fd(&here)
        );
        fs::create_dir(&at).unwrap();
        here = std::fs::File::open(&at).unwrap();
    }
    here
}

// A tree whose paths are longer than PATH_MAX (5 KB) could not be taken
// (tar and borg walk such trees): it is taken, diffed and restored.
#[test]
fn a_tree_deeper_than_path_max_is_taken_and_restored() {
    use std::os::unix::io::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = (dir.path().join("data"), dir.path().join("store"));
    fs::create_dir_all(&data).unwrap();
    let name = "n".repeat(250);
    let deepest = deep_chain(&data, &name, 24);
    fs::write(
        format!("/proc/self/fd/{}/leaf.txt", deepest.as_raw_fd()),
        "deep",
    )
    .unwrap();
    snap_ok(&store, &["take", data.to_str().unwrap()]);
    let d = snap_json(&store, &["diff", "latest", "--live"]);
    assert!(d["changes"].as_array().unwrap().is_empty(), "{d}");
    let out = dir.path().join("out");
    snap_ok(
        &store,
        &["restore", "latest", "--to", out.to_str().unwrap()],
    );
    let mut here = std::fs::File::open(out.join("data")).unwrap();
    for _ in 0..24 {
        here = std::fs::File::open(format!("/proc/self/fd/{}/{name}", here.as_raw_fd())).unwrap();
    }
    let leaf = fs::read_to_string(format!("/proc/self/fd/{}/leaf.txt", here.as_raw_fd())).unwrap();
    assert_eq!(leaf, "deep");
    snap_ok(&store, &["verify", "--read-data"]);
}
