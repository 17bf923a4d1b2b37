//! Every exit code the README documents, each from a real bad input to the
//! real binary; and `snap list | head -1`, which once panicked with "Broken
//! pipe" (exit 101).

mod common;
use common::*;
use std::fs;
use std::process::{Command, Stdio};

fn code(out: std::process::Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// A store with one snapshot of a small tree (and no configuration anywhere).
fn store_with_one(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (data, store) = (dir.join("data"), dir.join("store"));
    make_tree(&data, 3, 1);
    snap_ok(&store, &["init"]);
    snap_ok(&store, &["take", data.to_str().unwrap()]);
    (data, store)
}

fn no_config(
    args: &[&str],
    store: &std::path::Path,
    cwd: &std::path::Path,
) -> std::process::Output {
    Command::new(snap_bin())
        .current_dir(cwd)
        .env_remove("SNAP_CONFIG")
        .env("HOME", cwd)
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn exit_0_success() {
    let dir = tempfile::tempdir().unwrap();
    let (_data, store) = store_with_one(dir.path());
    assert_eq!(code(snap(&store, &["list"])), 0);
    let missing = dir.path().join("nope.db");
    assert_eq!(
        code(snap(
            &store,
            &["take", missing.to_str().unwrap(), "--allow-missing"]
        )),
        0
    );
}

#[test]
fn exit_1_io_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = store_with_one(dir.path());
    // The store's packs directory is replaced by a file: an I/O failure.
    fs::remove_dir_all(store.join("packs")).unwrap();
    fs::write(store.join("packs"), "not a directory").unwrap();
    fs::write(data.join("new.bin"), Rng(9).bytes(100_000)).unwrap();
    assert_eq!(code(snap(&store, &["take", data.to_str().unwrap()])), 1);
}

#[test]
fn exit_2_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = store_with_one(dir.path());
    let d = dir.path();
    let cases: Vec<Vec<&str>> = vec![
        vec!["take", "/no/such/path"],
        vec!["take"],
        vec!["take", data.to_str().unwrap(), "--time", "yesterday"],
        vec!["restore", "zzzzzz", "--to", "x"],
        vec!["restore", "latest", "--to", "-"],
        vec![
            "restore",
            "latest",
            "--to",
            data.parent().unwrap().to_str().unwrap(),
        ],
        vec!["mirror"],
        vec!["status"],
        vec!["gc", "--repack-threshold", "200", "--keep-last", "1"],
        vec!["forget"],
    ];
    for args in cases {
        let out = no_config(&args, &store, d);
        assert_eq!(code(out), 2, "snap {args:?}");
    }
    // Bad input changed nothing: still one snapshot.
    assert_eq!(snap_json(&store, &["list"]).as_array().unwrap().len(), 1);
}

#[test]
fn exit_3_corrupt_data() {
    let dir = tempfile::tempdir().unwrap();
    let (_data, store) = store_with_one(dir.path());
    for sub in fs::read_dir(store.join("packs")).unwrap() {
        for f in fs::read_dir(sub.unwrap().path()).unwrap() {
            let f = f.unwrap().path();
            let mut b = fs::read(&f).unwrap();
            b[10] ^= 0xff;
            fs::write(&f, b).unwrap();
        }
    }
    assert_eq!(code(snap(&store, &["verify", "--read-data"])), 3);
    let out = dir.path().join("out");
    assert_eq!(
        code(snap(
            &store,
            &["restore", "latest", "--to", out.to_str().unwrap()]
        )),
        3
    );
}

#[test]
fn exit_4_store_busy() {
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = store_with_one(dir.path());
    let lock = fs::OpenOptions::new()
        .write(true)
        .open(store.join("lock"))
        .unwrap();
    lock.lock().unwrap();
    assert_eq!(
        code(snap(
            &store,
            &["--lock-wait", "0", "take", data.to_str().unwrap()]
        )),
        4
    );
    lock.unlock().unwrap();
}

#[test]
fn exit_5_database_check_failed() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let db = dir.path().join("broken.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (randomblob(50000));")
        .unwrap();
    drop(c);
    let len = fs::metadata(&db).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len - 3000)
        .unwrap();
    snap_ok(&store, &["init"]);
    assert_eq!(code(snap(&store, &["take", db.to_str().unwrap()])), 5);
}

#[test]
fn exit_6_remote_failed() {
    let dir = tempfile::tempdir().unwrap();
    let (_data, store) = store_with_one(dir.path());
    // Nothing listens on this port: the bucket is unreachable.
    let out = Command::new(snap_bin())
        .env("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")
        .args([
            "--store",
            store.to_str().unwrap(),
            "mirror",
            "--plaintext",
            "--remote",
            "gs://bucket/x",
        ])
        .output()
        .unwrap();
    assert_eq!(code(out), 6);
}

#[test]
fn exit_8_the_remote_refused_the_credential() {
    let dir = tempfile::tempdir().unwrap();
    let (_data, store) = store_with_one(dir.path());
    // A bucket that answers every request 403, as GCS does to a credential
    // without the permission.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut buf = [0u8; 65536];
            let _ = c.read(&mut buf);
            let body =
                r#"{"error":{"code":403,"message":"forbidden","errors":[{"reason":"forbidden"}]}}"#;
            let _ = write!(
                c,
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let out = Command::new(snap_bin())
        .env("STORAGE_EMULATOR_HOST", format!("http://127.0.0.1:{port}"))
        .args([
            "--store",
            store.to_str().unwrap(),
            "mirror",
            "--plaintext",
            "--remote",
            "gs://bucket/x",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("permission denied for create"), "{err}");
    assert!(!err.contains("run it again"), "{err}");
    assert_eq!(code(out), 8);
}

#[test]
fn exit_7_job_overdue_or_failing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let config = dir.path().join("snap.toml");
    fs::write(
        &config,
        format!(
            "store = \"{}\"\n[sources.app]\npaths = [\"/no/such/dir\"]\n[jobs.backup]\naction = \"take\"\nschedule = \"hourly\"\n",
            store.display()
        ),
    )
    .unwrap();
    snap_ok(&store, &["init"]);
    let run = Command::new(snap_bin())
        .args(["--config", config.to_str().unwrap(), "run", "backup"])
        .output()
        .unwrap();
    assert_eq!(code(run), 1, "the job fails: its source is missing");
    let status = Command::new(snap_bin())
        .args(["--config", config.to_str().unwrap(), "status"])
        .output()
        .unwrap();
    assert_eq!(code(status), 7);
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = (dir.path().join("data"), dir.path().join("store"));
    fs::create_dir_all(&data).unwrap();
    snap_ok(&store, &["init"]);
    // More output than a pipe holds, so the writer meets the closed pipe.
    for i in 0..3000 {
        fs::write(data.join(format!("file-with-a-long-name-{i:05}")), "x").unwrap();
    }
    snap_ok(&store, &["take", data.to_str().unwrap()]);
    let mut child = Command::new(snap_bin())
        .args(["--store", store.to_str().unwrap(), "ls", "latest"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -1`: read one line, then close the pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(out.status.code(), Some(101));
}

// A long `verify` (or any reader) once blocked the pre-migration hook's
// `take` for as long as it ran: every command took the store lock
// exclusively. Readers now block only gc.
#[test]
fn a_reader_blocks_gc_but_not_take() {
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = store_with_one(dir.path());
    let readers = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(store.join("lock.readers"))
        .unwrap();
    readers.lock_shared().unwrap();
    fs::write(data.join("more.bin"), Rng(4).bytes(10_000)).unwrap();
    assert_eq!(
        code(snap(
            &store,
            &["--lock-wait", "0", "take", data.to_str().unwrap()]
        )),
        0
    );
    assert_eq!(code(snap(&store, &["--lock-wait", "0", "verify"])), 0);
    assert_eq!(
        code(snap(
            &store,
            &["--lock-wait", "0", "gc", "--keep-last", "1"]
        )),
        4
    );
    readers.unlock().unwrap();
    assert_eq!(
        code(snap(
            &store,
            &["--lock-wait", "0", "gc", "--keep-last", "1"]
        )),
        0
    );
}

#[test]
fn readers_and_a_writer_run_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = store_with_one(dir.path());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let out = snap(&store, &["--lock-wait", "0", "verify", "--read-data"]);
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stdout)
                );
                runs += 1;
            }
            runs
        })
    };
    for i in 0..10 {
        fs::write(data.join("more.bin"), Rng(i).bytes(300_000)).unwrap();
        assert_eq!(
            code(snap(
                &store,
                &["--lock-wait", "0", "take", data.to_str().unwrap()]
            )),
            0
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
}
