//! No interrupted command leaves a silent state. Ctrl-C 2.5 s into
//! `restore --in-place` left `data/` half old, half restored, with no
//! message; Ctrl-C during `take` printed nothing and left 622 MB of packs;
//! a full disk printed its error twice and left 96 MiB of orphan packs; a
//! killed restore left `.snap-restore-*` files that the next take stored.

mod common;
use common::*;
use rusqlite::Connection;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `snap ARGS` started, then sent `signal` after `delay`; its exit code and stderr.
fn signalled(store: &Path, args: &[&str], signal: i32, delay: Duration) -> (Option<i32>, String) {
    let child = Command::new(snap_bin())
        .arg("--store")
        .arg(store)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    unsafe { libc::kill(child.id() as i32, signal) };
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn packs(store: &Path) -> usize {
    walkdir(store.join("packs"))
}

fn walkdir(p: impl AsRef<Path>) -> usize {
    let Ok(entries) = fs::read_dir(p) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type().unwrap().is_dir() {
            true => walkdir(e.path()),
            false => 1,
        })
        .sum()
}

/// 120 files of 256 KiB of noise, and a database.
fn data(dir: &Path, seed: u64) {
    fs::create_dir_all(dir).unwrap();
    let mut rng = Rng(seed);
    for i in 0..120 {
        fs::write(dir.join(format!("f{i:03}")), rng.bytes(256 << 10)).unwrap();
    }
    let c = Connection::open(dir.join("app.db")).unwrap();
    c.execute_batch("CREATE TABLE IF NOT EXISTS t(x); INSERT INTO t VALUES (randomblob(1000));")
        .unwrap();
}

#[test]
fn an_interrupted_in_place_restore_is_named_and_a_rerun_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (src, store) = (dir.path().join("data"), dir.path().join("store"));
    data(&src, 1);
    let id = snap_json(&store, &["take", src.to_str().unwrap()])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let want = fingerprint(&src);
    // One whole restore tells how long a restore of this tree takes here.
    data(&src, 2);
    let t = Instant::now();
    snap_ok(&store, &["restore", &id, "--in-place"]);
    let full = t.elapsed();
    let mut interrupted_while_writing = 0;
    for trial in 1..12u64 {
        data(&src, 100 + trial);
        let before = fingerprint(&src);
        let fraction = [0.5, 0.7, 0.3, 0.85, 0.6, 0.4][trial as usize % 6];
        let (code, err) = signalled(
            &store,
            &["restore", &id, "--in-place"],
            libc::SIGINT,
            full.mul_f64(fraction),
        );
        match code {
            Some(0) => {
                assert_eq!(fingerprint(&src), want);
                continue;
            }
            Some(130) => {}
            other => panic!("exit {other:?}: {err}"),
        }
        assert!(err.contains("interrupted"), "{err}");
        let journal = walkdir(store.join("unfinished")) > 0;
        if !journal {
            // Stopped while snapshotting what was there: nothing was changed.
            assert!(err.contains("no snapshot was recorded"), "{err}");
            assert!(fingerprint(&src) == before);
            continue;
        }
        interrupted_while_writing += 1;
        assert!(
            err.contains("did not finish") && err.contains("finishes it"),
            "{err}"
        );
        // Every command that opens the store names it, with both ways out.
        let list = snap(&store, &["list"]);
        let warn = String::from_utf8_lossy(&list.stderr);
        assert!(
            warn.contains(&format!("snap restore {} --in-place", &id[..12])),
            "{warn}"
        );
        assert!(warn.contains("puts back what was there before"), "{warn}");
        let r = snap_json(&store, &["restore", &id, "--in-place"]);
        assert!(r["interim_snapshot"].is_string(), "{r}");
        assert_eq!(fingerprint(&src), want);
        assert!(leftovers(&src).is_empty(), "{:?}", leftovers(&src));
        assert_eq!(walkdir(store.join("unfinished")), 0);
        // And the undo still goes back to the state before the first attempt.
        let undo = r["undo_snapshot"].as_str().unwrap().to_string();
        snap_ok(&store, &["restore", &undo, "--in-place"]);
        assert_eq!(fingerprint(&src), before, "trial {trial}");
        if interrupted_while_writing >= 2 {
            break;
        }
    }
    assert!(
        interrupted_while_writing > 0,
        "no trial was interrupted while writing"
    );
    snap_ok(&store, &["verify", "--read-data"]);
}

#[test]
fn an_interrupted_take_says_so_and_leaves_no_packs() {
    let dir = tempfile::tempdir().unwrap();
    let (src, store) = (dir.path().join("data"), dir.path().join("store"));
    fs::create_dir_all(&src).unwrap();
    let mut rng = Rng(7);
    for i in 0..6 {
        fs::write(src.join(format!("big{i}")), rng.bytes(16 << 20)).unwrap();
    }
    snap_ok(&store, &["init"]);
    let t = Instant::now();
    snap_ok(&store, &["take", src.to_str().unwrap()]);
    let full = t.elapsed();
    for f in 0..6 {
        fs::write(src.join(format!("big{f}")), rng.bytes(16 << 20)).unwrap();
    }
    let before = packs(&store);
    let mut seen = false;
    for fraction in [0.5, 0.3, 0.7, 0.15] {
        let (code, err) = signalled(
            &store,
            &["take", src.to_str().unwrap()],
            libc::SIGTERM,
            full.mul_f64(fraction),
        );
        if code == Some(0) {
            snap_ok(&store, &["forget", "latest"]);
            snap_ok(&store, &["gc"]);
            continue;
        }
        assert_eq!(code, Some(130), "{err}");
        assert!(
            err.contains("interrupted; no snapshot was recorded"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "one message: {err}");
        assert_eq!(packs(&store), before, "no pack left behind: {err}");
        assert_eq!(snap_json(&store, &["list"]).as_array().unwrap().len(), 1);
        seen = true;
        break;
    }
    assert!(seen, "no take was interrupted");
    snap_ok(&store, &["verify", "--read-data"]);
}

// A full disk gave its error twice and left 96 MiB of orphan packs.
#[test]
fn a_full_disk_gives_one_message_and_leaves_no_packs() {
    let dir = tempfile::tempdir().unwrap();
    let (src, store) = (dir.path().join("data"), dir.path().join("store"));
    fs::create_dir_all(&src).unwrap();
    fs::create_dir_all(&store).unwrap();
    let ok = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=24m",
            "tmpfs",
            store.to_str().unwrap(),
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok, "mount a small tmpfs (tests run as root)");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(&store);
    let mut rng = Rng(9);
    for i in 0..5 {
        fs::write(src.join(format!("big{i}")), rng.bytes(10 << 20)).unwrap();
    }
    snap_ok(&store, &["init", "--pack-size", "4194304"]);
    let out = snap(&store, &["take", src.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(
        err.matches("No space left on device").count(),
        1,
        "said once: {err}"
    );
    assert!(err.contains("no snapshot was recorded"), "{err}");
    assert_eq!(packs(&store), 0, "no orphan pack: {err}");
    snap_ok(&store, &["verify"]);
}

// A killed restore left `.snap-restore-*` beside the database; with
// `--path DB` a rerun never removed it, and the next take stored it as a
// database.
#[test]
fn leftovers_of_a_killed_restore_are_swept_and_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (src, store) = (dir.path().join("data"), dir.path().join("store"));
    data(&src, 3);
    snap_ok(&store, &["take", src.to_str().unwrap()]);
    let leftover = src.join(".snap-restore-999999999-AbCdEf");
    fs::copy(src.join("app.db"), &leftover).unwrap();
    let out = snap(&store, &["take", src.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted restore; not stored"));
    let ls = snap_ok(&store, &["ls", "latest"]);
    assert!(!ls.contains(".snap-restore"), "{ls}");
    snap_ok(
        &store,
        &["restore", "latest", "--in-place", "--path", "data/app.db"],
    );
    assert!(!leftover.exists(), "swept by the next in-place restore");
}

// A restore --to that met a corrupt pack left a partial tree. What it
// created is removed; the error says so.
#[test]
fn a_failed_restore_to_a_new_directory_removes_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = (dir.path().join("data"), dir.path().join("store"));
    fs::create_dir_all(data.join("first")).unwrap();
    fs::write(data.join("first/a"), Rng(1).bytes(200_000)).unwrap();
    snap_ok(&store, &["take", data.to_str().unwrap()]);
    let before: Vec<_> = pack_files(&store);
    fs::create_dir_all(data.join("second")).unwrap();
    fs::write(data.join("second/b"), Rng(2).bytes(1 << 20)).unwrap();
    snap_ok(&store, &["take", data.to_str().unwrap()]);
    // The second take's pack starts with b's first chunk.
    let new: Vec<_> = pack_files(&store)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(new.len(), 1);
    let mut bytes = fs::read(&new[0]).unwrap();
    bytes[1000] ^= 0x08;
    fs::write(&new[0], bytes).unwrap();
    let out = dir.path().join("out");
    let r = snap(
        &store,
        &["restore", "latest", "--to", out.to_str().unwrap()],
    );
    assert_eq!(r.status.code(), Some(3));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("what it had written was removed"), "{err}");
    assert!(!out.join("data").exists(), "no partial tree is left");
}
