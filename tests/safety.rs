//! Regression tests for the data-loss and robustness defects of issue 9,
//! each run with the real binary. Each test opens with the story of its bug.

mod common;
use common::*;
use rusqlite::Connection;
use std::fs;
use std::path::{Path, PathBuf};

fn create_blob_db(path: &Path, blob: &[u8]) {
    let c = Connection::open(path).unwrap();
    c.execute_batch("PRAGMA journal_mode=delete; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
        .unwrap();
    c.execute("INSERT INTO t VALUES (1, ?1)", [blob]).unwrap();
}

fn set_blob(path: &Path, blob: &[u8]) {
    let c = Connection::open(path).unwrap();
    c.execute("UPDATE t SET v = ?1 WHERE id = 1", [blob])
        .unwrap();
}

fn blob_of(path: &Path) -> Vec<u8> {
    let c = Connection::open(path).unwrap();
    c.query_row("SELECT v FROM t WHERE id = 1", [], |r| r.get(0))
        .unwrap()
}

fn restore_to(store: &Path, id: &str, to: &Path) {
    let _ = fs::remove_dir_all(to);
    snap_ok(store, &["restore", id, "--to", to.to_str().unwrap()]);
}

// Defect 1. A database page P was stored in full (chunk B), then with one
// byte changed as a delta D against B, then changed completely. `gc
// --keep-last 1` kept D's index row but deleted B. When the database went back
// to D's content (an app restored an older copy), `take` deduplicated against
// D, recorded a snapshot and exited 0, and that snapshot could not be restored.
#[test]
fn gc_never_leaves_a_delta_without_its_base() {
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = (dir.path().join("data"), dir.path().join("store"));
    fs::create_dir_all(&data).unwrap();
    let db = data.join("app.db");
    let mut rng = Rng(1);
    let page = rng.bytes(3000);
    create_blob_db(&db, &page);
    snap_ok(&store, &["init"]);
    snap_ok(&store, &["take", data.to_str().unwrap()]);
    let mut edited = page.clone();
    edited[1500] ^= 0xff;
    set_blob(&db, &edited);
    let saved = dir.path().join("d-version.db");
    fs::copy(&db, &saved).unwrap();
    snap_ok(&store, &["take", data.to_str().unwrap()]);
    set_blob(&db, &rng.bytes(3000));
    snap_ok(&store, &["take", data.to_str().unwrap()]);
    snap_ok(
        &store,
        &["gc", "--keep-last", "1", "--repack-threshold", "1"],
    );
    // The database returns to D's content.
    fs::copy(&saved, &db).unwrap();
    let id = snap_json(&store, &["take", data.to_str().unwrap()])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = dir.path().join("out");
    restore_to(&store, &id, &out);
    assert_eq!(blob_of(&out.join("data/app.db")), edited);
    snap_ok(&store, &["verify", "--read-data"]);
    snap_ok(&store, &["gc", "--keep-last", "1"]);
    snap_ok(&store, &["repair", "index"]);
    snap_ok(&store, &["verify", "--read-data"]);
}

fn two_snapshots(dir: &Path) -> (PathBuf, PathBuf, Vec<(String, BTreeFp)>) {
    let (data, store) = (dir.join("data"), dir.join("store"));
    make_tree(&data, 5, 2);
    snap_ok(&store, &["init"]);
    let mut want = Vec::new();
    for round in 0..2u64 {
        fs::write(data.join("round.bin"), Rng(round).bytes(200_000)).unwrap();
        let id = snap_json(&store, &["take", data.to_str().unwrap()])["id"]
            .as_str()
            .unwrap()
            .to_string();
        want.push((id, fingerprint(&data)));
    }
    (data, store, want)
}

type BTreeFp = std::collections::BTreeMap<PathBuf, String>;

fn all_restore(store: &Path, dir: &Path, want: &[(String, BTreeFp)]) {
    for (id, fp) in want {
        let out = dir.join("out");
        restore_to(store, id, &out);
        assert_eq!(&fingerprint(&out.join("data")), fp, "snapshot {id}");
    }
}

// Defect 5. One flipped bit in an index row's pack id made gc repack that
// chunk away (the copy the index did not point to was called dead), and a
// kept snapshot became unrestorable even after `repair index`. With rows
// naming packs by number, the flipped bit names another real pack: a read
// past that pack's end was an I/O error rather than damage, and gc stopped
// instead of rebuilding the index.
#[test]
fn gc_trusts_pack_headers_not_a_damaged_index_row() {
    let dir = tempfile::tempdir().unwrap();
    let (_data, store, want) = two_snapshots(dir.path());
    // The pack number's low bit: the row names the other pack.
    flip_index_row(&store, 0);
    snap_ok(
        &store,
        &["gc", "--keep-last", "2", "--repack-threshold", "0"],
    );
    all_restore(&store, dir.path(), &want);
    snap_ok(&store, &["verify", "--read-data"]);
}

// Defect 5. One flipped bit in an index row's offset left `verify
// --read-data` at exit 0 while `restore` failed.
#[test]
fn verify_checks_index_rows_against_pack_headers() {
    let dir = tempfile::tempdir().unwrap();
    let (_data, store, _want) = two_snapshots(dir.path());
    flip_index_row(&store, 5);
    let out = snap(&store, &["verify", "--read-data"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "verify passed a damaged index row"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("does not match the pack's header"));
    snap_ok(&store, &["repair", "index"]);
    snap_ok(&store, &["verify", "--read-data"]);
}

// Defect 6. One corrupt snapshot record blocked take, list, gc and `restore
// latest` (exit 3), and `mirror` uploaded it, and a corrupt pack, unchecked.
#[test]
fn a_corrupt_record_is_named_and_the_rest_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let (data, store, want) = two_snapshots(dir.path());
    let bad = store.join("snapshots").join(format!("{}.json", want[0].0));
    let mut bytes = fs::read(&bad).unwrap();
    bytes[10] ^= 1;
    fs::write(&bad, bytes).unwrap();
    let out = snap(&store, &["list"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&want[0].0));
    snap_ok(&store, &["take", data.to_str().unwrap()]);
    restore_to(&store, "latest", &dir.path().join("out"));
    snap_ok(&store, &["gc", "--keep-last", "5"]);
    let v = snap(&store, &["verify"]);
    assert_eq!(v.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&v.stdout).contains(&want[0].0));
    // mirror uploads neither the corrupt record nor a corrupt pack.
    let remote = dir.path().join("remote");
    let url = format!("file://{}", remote.display());
    let pack = fs::read_dir(store.join("packs"))
        .unwrap()
        .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .next()
        .unwrap();
    let mut p = fs::read(&pack).unwrap();
    p[0] ^= 1;
    fs::write(&pack, p).unwrap();
    let m = snap(&store, &["mirror", "--plaintext", "--remote", &url]);
    assert_eq!(
        m.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&m.stderr)
    );
    let uploaded: Vec<_> = walkdir(&remote);
    let pack_name = pack.file_name().unwrap().to_str().unwrap().to_string();
    assert!(!uploaded.iter().any(|f| f.ends_with(&pack_name)));
    assert!(!uploaded.iter().any(|f| f.contains(&want[0].0)));
}

fn walkdir(p: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(p) {
        for e in rd {
            let e = e.unwrap().path();
            if e.is_dir() {
                out.extend(walkdir(&e));
            } else {
                out.push(e.to_string_lossy().into_owned());
            }
        }
    }
    out
}

// Defect 7. Database images were opened as SQLite URIs without escaping:
// `restore --to 'out#1'` exited 1 half restored, `take` into a store at
// `st#2` exited 1, and `verify` of a store moved to `st?3` reported a problem.
#[test]
fn paths_with_uri_characters_work() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("da%ta");
    fs::create_dir_all(&data).unwrap();
    create_blob_db(&data.join("app#.db"), b"hello");
    let store = dir.path().join("st#2");
    snap_ok(&store, &["init"]);
    snap_ok(&store, &["take", data.to_str().unwrap()]);
    let out = dir.path().join("out#1");
    restore_to(&store, "latest", &out);
    assert_eq!(blob_of(&out.join("da%ta/app#.db")), b"hello");
    let moved = dir.path().join("st?3");
    fs::rename(&store, &moved).unwrap();
    snap_ok(&moved, &["verify", "--read-data"]);
}

/// A read-only bind mount of `src`, removed on drop.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn mount(src: &Path, at: &Path) -> ReadOnly {
        fs::create_dir_all(at).unwrap();
        let run = |args: &[&str]| {
            let ok = std::process::Command::new("mount")
                .args(args)
                .status()
                .unwrap()
                .success();
            assert!(ok, "mount {args:?} failed");
        };
        run(&["--bind", src.to_str().unwrap(), at.to_str().unwrap()]);
        let guard = ReadOnly(at.to_path_buf());
        run(&["-o", "remount,ro,bind", at.to_str().unwrap()]);
        guard
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

// Defect 8. `restore`, `verify` and `ls` failed on a read-only store
// (EROFS) because they opened the lock for writing.
#[test]
fn read_only_commands_work_on_a_read_only_store() {
    let dir = tempfile::tempdir().unwrap();
    let (_data, store, want) = two_snapshots(dir.path());
    let ro = ReadOnly::mount(&store, &dir.path().join("ro"));
    assert!(
        fs::write(ro.0.join("x"), b"x").is_err(),
        "the mount is writable"
    );
    snap_ok(&ro.0, &["list"]);
    snap_ok(&ro.0, &["ls", "latest"]);
    snap_ok(&ro.0, &["verify", "--read-data"]);
    all_restore(&ro.0, dir.path(), &want);
}

// Defect 8. `list` and `restore latest` failed while gc ran ("No such file
// or directory" on a record gc was deleting).
#[test]
fn list_runs_beside_gc() {
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = (dir.path().join("data"), dir.path().join("store"));
    fs::create_dir_all(&data).unwrap();
    snap_ok(&store, &["init"]);
    for i in 0..40 {
        fs::write(data.join("f"), format!("{i}")).unwrap();
        snap_ok(
            &store,
            &[
                "take",
                data.to_str().unwrap(),
                "--time",
                &format!("2026-01-01T00:{i:02}:00Z"),
            ],
        );
    }
    let gc = std::process::Command::new(snap_bin())
        .args(["--store", store.to_str().unwrap(), "gc", "--keep-last", "1"])
        .spawn()
        .unwrap();
    let mut gc = gc;
    let mut runs = 0;
    while gc.try_wait().unwrap().is_none() || runs < 5 {
        snap_ok(&store, &["list"]);
        runs += 1;
    }
    assert!(gc.wait().unwrap().success());
}

// Defect 9. A file appended to while `take` read it was read to 37 GB and
// filled the disk.
#[test]
fn a_growing_file_is_read_up_to_its_size_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = (dir.path().join("data"), dir.path().join("store"));
    fs::create_dir_all(&data).unwrap();
    let log = data.join("app.log");
    fs::write(&log, Rng(5).bytes(4 << 20)).unwrap();
    snap_ok(&store, &["init"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let appender = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
            let block = vec![b'x'; 1 << 16];
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 2 << 30 {
                f.write_all(&block).unwrap();
                n += block.len() as u64;
            }
        })
    };
    let out = snap(&store, &["--json", "take", data.to_str().unwrap()]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    appender.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let read = v["stats"]["read"].as_u64().unwrap();
    assert!(read < 512 << 20, "read {read} bytes of a growing file");
    assert!(String::from_utf8_lossy(&out.stderr).contains("changed while it was read"));
    snap_ok(&store, &["verify", "--read-data"]);
}

// Defect 10. A snapshot whose tree was a 30,000-deep chain of directories
// made `ls`, `verify` and `gc --dry-run` abort with a stack overflow.
#[test]
fn a_very_deep_tree_is_walked_without_recursion() {
    use snap::format::tree::{encode_tree, Node, NodeKind, Tree};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = snap::Store::init(&root, snap::StoreConfig::default()).unwrap();
    {
        let repo = store
            .repository(
                snap::store::Access::Write,
                "test",
                std::time::Duration::ZERO,
            )
            .unwrap();
        let mut w = snap::dedup::ChunkWriter::new(&repo).unwrap();
        let node = |name: &str, kind| Node {
            name: name.as_bytes().to_vec(),
            kind,
            mode: 0o40755,
            uid: 0,
            gid: 0,
            mtime: 0,
            ctime: 0,
            inode: 0,
            dev: 0,
            size: 0,
        };
        let mut tree = Tree::default();
        for _ in 0..30_000 {
            let ids = w.put_buffer(&encode_tree(&tree)).unwrap();
            tree = Tree {
                nodes: vec![node("d", NodeKind::Dir { tree: ids })],
            };
        }
        let top = w.put_buffer(&encode_tree(&tree)).unwrap();
        w.finish().unwrap();
        store
            .write_snapshot(&snap::Snapshot {
                version: snap::format::record::RECORD_VERSION,
                time: chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap(),
                host: "h".into(),
                paths: vec!["/d".into()],
                tags: vec![],
                tree: top,
                parent: None,
                stats: Default::default(),
                skipped: vec![],
                databases: vec![],
                excludes: vec![],
                point: None,
            })
            .unwrap();
    }
    snap_ok(&root, &["ls", "latest"]);
    // Verify checks what restore checks: it walks the whole tree, and says
    // that restore will refuse it (it passed such a tree before).
    let v = snap(&root, &["verify"]);
    assert_eq!(v.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&v.stdout).contains("restore refuses it"));
    snap_ok(&root, &["gc", "--keep-last", "1", "--dry-run"]);
    snap_ok(&root, &["gc", "--keep-last", "1"]);
    let r = snap(
        &root,
        &[
            "restore",
            "latest",
            "--to",
            dir.path().join("out").to_str().unwrap(),
        ],
    );
    assert_eq!(
        r.status.code(),
        Some(2),
        "a too-deep restore is refused, not a crash"
    );
}

// Defect 11. Killed takes left up to 535 MB in `tmp/` until a gc.
#[test]
fn temporary_files_of_killed_runs_are_removed_at_the_next_take() {
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = (dir.path().join("data"), dir.path().join("store"));
    make_tree(&data, 2, 1);
    snap_ok(&store, &["init"]);
    fs::write(store.join("tmp/.pack-left"), vec![0u8; 1 << 20]).unwrap();
    fs::write(store.join("tmp/.image-left"), vec![0u8; 1 << 20]).unwrap();
    snap_ok(&store, &["take", data.to_str().unwrap()]);
    assert!(!store.join("tmp/.pack-left").exists());
    assert!(!store.join("tmp/.image-left").exists());
}

// Defect 11. A truncated SQLite file failed the whole `take`, while a
// corrupted page recorded the snapshot with exit 5. Both are now recorded,
// marked, and exit 5: the damaged data may be all the user has.
#[test]
fn a_truncated_database_is_recorded_and_marked() {
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = (dir.path().join("data"), dir.path().join("store"));
    fs::create_dir_all(&data).unwrap();
    let db = data.join("app.db");
    create_blob_db(&db, &Rng(3).bytes(100_000));
    let len = fs::metadata(&db).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len / 2 + 100)
        .unwrap();
    snap_ok(&store, &["init"]);
    let out = snap(&store, &["take", data.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = snap_json(&store, &["list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["ok"], false);
}

// Defect 11. A chunk gone from the store exited 2 with the hint "repair
// index rebuilds it": it is damage (exit 3), and repair cannot bring it back.
#[test]
fn a_missing_pack_is_damage_not_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (_data, store, want) = two_snapshots(dir.path());
    for d in fs::read_dir(store.join("packs")).unwrap() {
        fs::remove_dir_all(d.unwrap().path()).unwrap();
    }
    let to = dir.path().join("out");
    let out = snap(
        &store,
        &["restore", &want[1].0, "--to", to.to_str().unwrap()],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
