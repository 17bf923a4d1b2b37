//! The real `snap` binary, end to end: init, take, list, ls, restore, verify,
//! repair index, and the refusals that protect data.

mod common;
use common::*;
use std::fs;

#[test]
fn take_list_ls_restore_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (src, store) = (dir.path().join("data"), dir.path().join("store"));
    make_tree(&src, 7, 5);
    snap_ok(&store, &["init"]);
    let out = snap_ok(&store, &["take", src.to_str().unwrap(), "--tag", "first"]);
    assert!(out.contains("snapshot "), "{out}");
    let list = snap_json(&store, &["list"]);
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 1);
    for key in ["id", "time", "tags", "paths", "size", "added"] {
        assert!(rows[0].get(key).is_some(), "list --json lacks {key}");
    }
    assert_eq!(rows[0]["tags"][0], "first");
    assert!(rows[0]["added"].as_u64().unwrap() > 0);
    let id = rows[0]["id"].as_str().unwrap().to_string();

    let ls = snap_json(&store, &["ls", &id[..8]]);
    let paths: Vec<_> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    assert!(
        paths.contains(&"data/a/b/c/deep.txt".to_string()),
        "{paths:?}"
    );
    assert!(paths.contains(&"data/empty-dir".to_string()));

    let to = dir.path().join("out");
    snap_ok(&store, &["restore", &id[..6], "--to", to.to_str().unwrap()]);
    assert_eq!(fingerprint(&src), fingerprint(&to.join("data")));

    // --path restores one sub-tree.
    let part = dir.path().join("part");
    snap_ok(
        &store,
        &[
            "restore",
            "latest",
            "--to",
            part.to_str().unwrap(),
            "--path",
            "data/a/b",
        ],
    );
    assert_eq!(fingerprint(&src.join("a/b")), fingerprint(&part.join("b")));

    // An unchanged re-take stores almost nothing and reads nothing.
    let again = snap_json(&store, &["take", src.to_str().unwrap()]);
    assert_eq!(again["stats"]["read"], 0, "{again}");
    assert!(again["stats"]["added"].as_u64().unwrap() < 1000, "{again}");
    let forced = snap_json(&store, &["take", src.to_str().unwrap(), "--force-read"]);
    assert!(forced["stats"]["read"].as_u64().unwrap() > 0);
    assert_eq!(
        snap_json(&store, &["list", "--tag", "first"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    snap_ok(&store, &["verify", "--read-data"]);
}

#[test]
fn refusals_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (src, store) = (dir.path().join("data"), dir.path().join("store"));
    make_tree(&src, 3, 1);
    snap_ok(&store, &["init"]);
    // A missing path: clear error, no snapshot.
    let out = snap(&store, &["take", dir.path().join("nope").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    // --allow-missing: a no-op that succeeds.
    let out = snap_ok(
        &store,
        &[
            "take",
            dir.path().join("nope").to_str().unwrap(),
            "--allow-missing",
        ],
    );
    assert!(out.contains("nothing to back up"));
    assert_eq!(snap_json(&store, &["list"]).as_array().unwrap().len(), 0);

    snap_ok(&store, &["take", src.to_str().unwrap()]);
    // Restore onto an existing target is refused without --force.
    let to = dir.path().join("out");
    fs::create_dir_all(to.join("data")).unwrap();
    fs::write(to.join("data/keep"), b"mine").unwrap();
    let out = snap(&store, &["restore", "latest", "--to", to.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(fs::read(to.join("data/keep")).unwrap(), b"mine");
    snap_ok(
        &store,
        &["restore", "latest", "--to", to.to_str().unwrap(), "--force"],
    );
    assert_eq!(fingerprint(&src), {
        let mut f = fingerprint(&to.join("data"));
        f.remove(std::path::Path::new("keep"));
        f
    });
    // Bad ids.
    assert_eq!(
        snap(&store, &["restore", "abc", "--to", "x"]).status.code(),
        Some(2)
    );
    assert_eq!(
        snap(&store, &["restore", "ffffff", "--to", "x"])
            .status
            .code(),
        Some(2)
    );
    // No store.
    let out = snap(&dir.path().join("missing-store"), &["list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("snap init"));
}

#[test]
fn symlink_in_the_way_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let (src, store) = (dir.path().join("data"), dir.path().join("store"));
    make_tree(&src, 5, 1);
    snap_ok(&store, &["init"]);
    snap_ok(&store, &["take", src.to_str().unwrap()]);
    // The target's "a" is a symlink to a directory outside; restore must not write through it.
    let outside = dir.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let to = dir.path().join("out");
    fs::create_dir_all(to.join("data")).unwrap();
    std::os::unix::fs::symlink(&outside, to.join("data/a")).unwrap();
    assert!(
        !snap(&store, &["restore", "latest", "--to", to.to_str().unwrap()])
            .status
            .success()
    );
    snap_ok(
        &store,
        &["restore", "latest", "--to", to.to_str().unwrap(), "--force"],
    );
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "wrote through a symlink"
    );
    assert_eq!(fingerprint(&src), fingerprint(&to.join("data")));
}

#[test]
fn flipped_byte_in_a_pack_is_detected_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let (src, store) = (dir.path().join("data"), dir.path().join("store"));
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("big.bin"), Rng(9).bytes(3 << 20)).unwrap();
    snap_ok(&store, &["init"]);
    snap_ok(&store, &["take", src.to_str().unwrap()]);
    let pack = walkdir(&store.join("packs"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "pack"))
        .unwrap();
    let mut bytes = fs::read(&pack).unwrap();
    bytes[1000] ^= 0x01;
    fs::write(&pack, bytes).unwrap();
    let to = dir.path().join("out");
    let out = snap(&store, &["restore", "latest", "--to", to.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    let pack_name = pack.file_stem().unwrap().to_str().unwrap();
    assert!(err.contains(pack_name) && err.contains("big.bin"), "{err}");
    assert!(
        !to.join("data/big.bin").exists(),
        "a corrupt file was restored"
    );
    let leftovers: Vec<_> = walkdir(&to).into_iter().filter(|p| p.is_file()).collect();
    assert!(
        leftovers.is_empty(),
        "half-written files left: {leftovers:?}"
    );
    let out = snap(&store, &["verify", "--read-data"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains(pack_name));
}

#[test]
fn deleted_index_is_rebuilt_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (src, store) = (dir.path().join("data"), dir.path().join("store"));
    make_tree(&src, 11, 3);
    snap_ok(&store, &["init"]);
    snap_ok(&store, &["take", src.to_str().unwrap()]);
    fs::remove_file(store.join("index.redb")).unwrap();
    snap_ok(&store, &["repair", "index"]);
    snap_ok(&store, &["verify", "--read-data"]);
    // Without repair, the index is rebuilt on first use.
    fs::remove_file(store.join("index.redb")).unwrap();
    let to = dir.path().join("out");
    snap_ok(&store, &["restore", "latest", "--to", to.to_str().unwrap()]);
    assert_eq!(fingerprint(&src), fingerprint(&to.join("data")));
}

#[test]
fn default_store_is_created_on_first_take() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("data");
    make_tree(&src, 13, 1);
    let out = std::process::Command::new(snap_bin())
        .env_remove("SNAP_STORE")
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path().join("xdg"))
        .args(["take", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("xdg/snap/config").exists());
}

pub fn walkdir(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(root) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walkdir(&p));
            }
            out.push(p);
        }
    }
    out
}

/// Runs snap as an unprivileged user when the tests run as root (root reads
/// any file, so an unreadable file needs a user it is unreadable to).
fn snap_unprivileged(store: &std::path::Path, args: &[&str]) -> std::process::Output {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .unwrap()
        .stdout
        == b"0\n";
    let mut cmd = if root {
        let mut c = std::process::Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            snap_bin(),
        ]);
        c
    } else {
        std::process::Command::new(snap_bin())
    };
    cmd.arg("--store").arg(store).args(args).output().unwrap()
}

fn open_up(p: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(0o777)).unwrap();
}

#[test]
fn unreadable_files_fail_the_take_or_are_recorded_as_skipped() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    open_up(dir.path());
    let (src, store) = (dir.path().join("data"), dir.path().join("store"));
    make_tree(&src, 31, 1);
    fs::write(src.join("secret.key"), b"no").unwrap();
    fs::set_permissions(src.join("secret.key"), fs::Permissions::from_mode(0o000)).unwrap();
    // The unprivileged user may read everything else and write the store.
    for p in walkdir(&src).into_iter().chain([src.clone()]) {
        if p.file_name().unwrap() != "secret.key" && !p.is_symlink() {
            let m = fs::metadata(&p).unwrap().permissions().mode();
            fs::set_permissions(&p, fs::Permissions::from_mode(m | 0o755)).unwrap();
        }
    }
    fs::create_dir(&store).unwrap();
    open_up(&store);
    let out = snap_unprivileged(&store, &["init"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = snap_unprivileged(&store, &["take", src.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("secret.key"));
    assert_eq!(
        fs::read_dir(store.join("snapshots")).unwrap().count(),
        0,
        "a snapshot was recorded"
    );
    let out = snap_unprivileged(
        &store,
        &["--json", "take", src.to_str().unwrap(), "--skip-unreadable"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["skipped"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("secret.key"),
        "{v}"
    );
}

#[test]
fn sockets_and_fifos_are_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (src, store) = (dir.path().join("data"), dir.path().join("store"));
    make_tree(&src, 37, 1);
    let _listener = std::os::unix::net::UnixListener::bind(src.join("app.sock")).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(src.join("pipe"))
        .status()
        .unwrap()
        .success());
    snap_ok(&store, &["init"]);
    let out = snap(&store, &["take", src.to_str().unwrap()]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("app.sock") && err.contains("pipe") && err.contains("skipped"),
        "{err}"
    );
    let to = dir.path().join("out");
    snap_ok(&store, &["restore", "latest", "--to", to.to_str().unwrap()]);
    assert!(!to.join("data/app.sock").exists() && !to.join("data/pipe").exists());
}
