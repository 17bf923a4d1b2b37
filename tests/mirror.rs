//! Mirroring to a real GCS JSON-API emulator (`gcp-storage-emulator`) and to
//! a `file://` remote: clone and restore from the bucket alone, resume after
//! the emulator is stopped mid-upload, remote retention, never overwriting.

mod common;
use common::proxy::Proxy;
use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

type Tree = BTreeMap<PathBuf, String>;

fn json(out: String) -> serde_json::Value {
    serde_json::from_str(&out).unwrap()
}

/// Takes `n` snapshots of a changing tree, `every` days apart; returns id -> fingerprint.
fn take_days(store: &Path, src: &Path, n: u64, every: u64) -> BTreeMap<String, Tree> {
    let mut want = BTreeMap::new();
    for day in (0..n).map(|i| i * every) {
        fs::write(src.join("changing.bin"), Rng(day + 1).bytes(200_000)).unwrap();
        fs::write(
            src.join(format!("day-{day}.txt")),
            Rng(day + 7).text(20_000),
        )
        .unwrap();
        // Old day files go away, so old packs stop being needed.
        let _ = fs::remove_file(src.join(format!("day-{}.txt", day.wrapping_sub(3 * every))));
        let time = (chrono::DateTime::parse_from_rfc3339("2026-06-01T03:00:00Z").unwrap()
            + chrono::Duration::days(day as i64))
        .to_rfc3339();
        let out = snap_json(store, &["take", src.to_str().unwrap(), "--time", &time]);
        want.insert(out["id"].as_str().unwrap().to_string(), fingerprint(src));
    }
    want
}

/// Runs snap against the emulator, opening the remote with the identity
/// `seal` made beside the store, when there is one.
fn at(host: &str, store: &Path, args: &[&str]) -> std::process::Output {
    let id = store.parent().unwrap().join("identity");
    let mut all: Vec<&str> = Vec::new();
    let id_str = id.to_str().unwrap().to_string();
    if id.exists() {
        all.extend(["--identity", &id_str]);
    }
    all.extend(args);
    snap_at(host, store, &all)
}

/// Makes the store encrypt what it mirrors: a new identity beside the store
/// (standing for the operator's, kept off the server), its recipient in the store.
fn seal(store: &Path) {
    let id = store.parent().unwrap().join("identity");
    snap_ok(store, &["key", "generate", "--out", id.to_str().unwrap()]);
}

fn restored(to: &Path) -> Tree {
    fingerprint(&to.join("data"))
}

#[test]
fn mirror_delete_local_clone_and_restore_everything() {
    if emulator_bin().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(&dir.path().join("emu"));
    let (src, store) = (dir.path().join("data"), dir.path().join("store"));
    make_tree(&src, 17, 3);
    snap_ok(&store, &["init"]);
    seal(&store);
    let want = take_days(&store, &src, 3, 1);
    let url = "gs://snaptest/clone-test";
    let first = json(ok(at(
        &emu.host(),
        &store,
        &["--json", "mirror", "--remote", url],
    )));
    assert!(first["packs_uploaded"].as_u64().unwrap() > 0);
    assert_eq!(first["records_uploaded"], 3);
    // Idempotent: nothing more to send.
    let again = json(ok(at(
        &emu.host(),
        &store,
        &["--json", "mirror", "--remote", url, "--verify", "100"],
    )));
    assert_eq!(again["packs_uploaded"], 0);
    assert_eq!(again["records_uploaded"], 0);
    assert_eq!(again["packs_verified"], first["packs_uploaded"]);
    // The remote's own bytes verify (packs read from the bucket, databases checked).
    let v = json(ok(at(
        &emu.host(),
        &store,
        &["--json", "verify", "--remote", url, "--read-data"],
    )));
    assert_eq!(v["ok"], true);
    assert_eq!(v["report"]["packs_read"], first["packs_uploaded"]);
    // The machine is gone: rebuild from the bucket alone.
    fs::remove_dir_all(&store).unwrap();
    let clone = json(ok(at(
        &emu.host(),
        &store,
        &["--json", "clone", "--remote", url],
    )));
    assert_eq!(clone["snapshots"], 3);
    ok(at(&emu.host(), &store, &["verify", "--read-data"]));
    for (id, tree) in &want {
        let to = dir.path().join(format!("out-{id}"));
        ok(at(
            &emu.host(),
            &store,
            &["restore", id, "--to", to.to_str().unwrap()],
        ));
        assert_eq!(&restored(&to), tree);
    }
}

#[test]
fn restore_and_list_from_the_bucket_without_a_local_store() {
    if emulator_bin().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(&dir.path().join("emu"));
    let (src, store) = (dir.path().join("data"), dir.path().join("store"));
    make_tree(&src, 19, 2);
    snap_ok(&store, &["init"]);
    seal(&store);
    let want = take_days(&store, &src, 2, 1);
    let url = "gs://snaptest/dr";
    ok(at(&emu.host(), &store, &["mirror", "--remote", url]));
    let nowhere = dir.path().join("no-store-here");
    let list = json(ok(at(
        &emu.host(),
        &nowhere,
        &["--json", "list", "--remote", url],
    )));
    assert_eq!(list.as_array().unwrap().len(), 2);
    for (id, tree) in &want {
        let to = dir.path().join(format!("out-{id}"));
        ok(at(
            &emu.host(),
            &nowhere,
            &[
                "restore",
                &id[..10],
                "--remote",
                url,
                "--to",
                to.to_str().unwrap(),
            ],
        ));
        assert_eq!(&restored(&to), tree);
    }
    assert!(!nowhere.exists(), "a remote restore created a local store");
}

#[test]
fn mirror_interrupted_by_stopping_the_emulator_resumes() {
    if emulator_bin().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(&dir.path().join("emu"));
    // The network is cut by stopping a proxy in front of the emulator:
    // killing the emulator itself mid-write could leave its own metadata
    // file torn, and then it would not start again (the flaky failure
    // "emulator did not start").
    let anyone = ["=create,get,list,delete"];
    let proxy = Proxy::with_grants(emu.port, &anyone);
    let (src, store) = (dir.path().join("data"), dir.path().join("store"));
    fs::create_dir_all(&src).unwrap();
    for i in 0..96 {
        fs::write(src.join(format!("f{i}.bin")), Rng(i + 100).bytes(1 << 20)).unwrap();
    }
    snap_ok(&store, &["init", "--pack-size", "1048576"]);
    seal(&store);
    let want = take_days(&store, &src, 1, 1);
    let url = "gs://snaptest/resume";
    let child = std::process::Command::new(snap_bin())
        .env(
            "STORAGE_EMULATOR_HOST",
            format!("http://127.0.0.1:{}", proxy.port),
        )
        .args([
            "--store",
            store.to_str().unwrap(),
            "mirror",
            "--remote",
            url,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Stop the emulator once a few packs have landed, mid-way through the upload.
    let landed = dir.path().join("emu/.cloudstorage/snaptest/resume/packs");
    let t = std::time::Instant::now();
    while count_files(&landed) < 5 && t.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(proxy);
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "interrupted mirror: {:?} {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(6),
        "the mirror was not interrupted: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let proxy = Proxy::with_grants(emu.port, &anyone);
    // Whatever the cut left, the remote never lists a record whose packs are missing.
    let host = format!("http://127.0.0.1:{}", proxy.port);
    let records = json(ok(at(&host, &store, &["--json", "list", "--remote", url])));
    for r in records.as_array().unwrap() {
        let to = dir.path().join("early");
        ok(at(
            &host,
            &store,
            &[
                "restore",
                r["id"].as_str().unwrap(),
                "--remote",
                url,
                "--to",
                to.to_str().unwrap(),
            ],
        ));
        fs::remove_dir_all(&to).unwrap();
    }
    let resumed = json(ok(at(
        &host,
        &store,
        &["--json", "mirror", "--remote", url, "--verify", "100"],
    )));
    assert!(
        resumed["problems"].as_array().unwrap().is_empty(),
        "{resumed}"
    );
    let local_packs = walk_packs(&store.join("packs"));
    assert_eq!(
        resumed["packs_verified"].as_u64().unwrap() as usize,
        local_packs.len(),
        "remote packs differ: {resumed}"
    );
    assert_eq!(
        resumed["packs_uploaded"].as_u64().unwrap()
            + resumed["packs_already_there"].as_u64().unwrap(),
        local_packs.len() as u64
    );
    let (id, tree) = want.iter().next().unwrap();
    let to = dir.path().join("final");
    ok(at(
        &host,
        &dir.path().join("none"),
        &["restore", id, "--remote", url, "--to", to.to_str().unwrap()],
    ));
    assert_eq!(&restored(&to), tree);
}

fn count_files(dir: &Path) -> usize {
    fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        count_files(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn walk_packs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in fs::read_dir(dir).unwrap() {
        for f in fs::read_dir(sub.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out
}

#[test]
fn remote_keeps_90_days_while_local_keeps_30() {
    if emulator_bin().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(&dir.path().join("emu"));
    let (src, store) = (dir.path().join("data"), dir.path().join("store"));
    fs::create_dir_all(&src).unwrap();
    snap_ok(&store, &["init"]);
    seal(&store);
    // Every 3 days for 120 days: 40 snapshots (the emulator is slow per request).
    let want = take_days(&store, &src, 40, 3);
    let url = "gs://snaptest/tiers";
    let host = emu.host();
    ok(at(&host, &store, &["mirror", "--remote", url]));
    ok(at(&host, &store, &["gc", "--keep-within", "30d"]));
    // The daily mirror after the local gc: its hold no longer names what
    // the local store let go, so the remote's own policy decides.
    ok(at(&host, &store, &["mirror", "--remote", url]));
    let remote_gc = json(ok(at(
        &host,
        &store,
        &["--json", "gc", "--remote", url, "--keep-within", "90d"],
    )));
    assert!(
        remote_gc["packs_deleted"].as_u64().unwrap() > 0,
        "{remote_gc}"
    );
    // A later mirror must not bring back what either side forgot.
    ok(at(&host, &store, &["mirror", "--remote", url]));
    let local: Vec<String> = snap_json(&store, &["list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().into())
        .collect();
    let remote: Vec<String> = json(ok(at(&host, &store, &["--json", "list", "--remote", url])))
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().into())
        .collect();
    assert_eq!(
        local.len(),
        11,
        "local keeps 30 days before the newest, inclusive"
    );
    assert_eq!(remote.len(), 31, "remote keeps 90 days");
    let only_remote: Vec<&String> = remote.iter().filter(|id| !local.contains(id)).collect();
    assert_eq!(only_remote.len(), 20);
    for id in [only_remote[0], only_remote[19]] {
        let to = dir.path().join(format!("out-{id}"));
        ok(at(
            &host,
            &dir.path().join("none"),
            &["restore", id, "--remote", url, "--to", to.to_str().unwrap()],
        ));
        assert_eq!(restored(&to), want[id]);
    }
    let out = at(&host, &store, &["--json", "verify"]);
    assert!(out.status.success());
}

#[test]
fn an_existing_pack_is_never_overwritten_on_a_file_remote() {
    let dir = tempfile::tempdir().unwrap();
    let (src, store) = (dir.path().join("data"), dir.path().join("store"));
    make_tree(&src, 23, 2);
    snap_ok(&store, &["init"]);
    snap_ok(&store, &["take", src.to_str().unwrap()]);
    let remote_dir = dir.path().join("remote");
    let url = format!("file://{}", remote_dir.display());
    snap_ok(&store, &["mirror", "--plaintext", "--remote", &url]);
    let pack = walk_packs(&remote_dir.join("packs")).pop().unwrap();
    fs::write(&pack, b"something else").unwrap();
    let out = snap(
        &store,
        &["mirror", "--plaintext", "--remote", &url, "--verify", "100"],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "a damaged remote pack must be reported"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(pack.file_name().unwrap().to_str().unwrap())
    );
    assert_eq!(
        fs::read(&pack).unwrap(),
        b"something else",
        "the remote pack was overwritten"
    );
    // The library refuses outright to write over an existing object.
    let remote = snap::mirror::Remote::open(&url).unwrap();
    assert!(remote.put_new("probe", b"one".to_vec()).unwrap());
    assert!(!remote.put_new("probe", b"two".to_vec()).unwrap());
    assert_eq!(remote.read("probe").unwrap(), b"one");
}

#[test]
fn an_unreachable_bucket_is_a_clear_error_that_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (src, store) = (dir.path().join("data"), dir.path().join("store"));
    make_tree(&src, 29, 1);
    snap_ok(&store, &["init"]);
    snap_ok(&store, &["take", src.to_str().unwrap()]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let before = fingerprint(&store);
    let out = at(
        &format!("http://127.0.0.1:{port}"),
        &store,
        &["mirror", "--plaintext", "--remote", "gs://snaptest/x"],
    );
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("remote"));
    // Lock files (and the root's mtime, which their creation moves) aside.
    let mut after = fingerprint(&store);
    after.retain(|p, _| !p.to_string_lossy().starts_with("lock") && p.as_os_str() != "");
    let mut before = before;
    before.retain(|p, _| !p.to_string_lossy().starts_with("lock") && p.as_os_str() != "");
    assert_eq!(before, after);
}
