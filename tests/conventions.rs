//! What users of tar, borg and restic expect, with the real binary: hard
//! links and sparse files come back as such, shell completions and man
//! pages, system units for root, `${VAR}` in the configuration.

mod common;
use common::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

#[test]
fn hard_links_and_sparse_files_are_restored_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = (dir.path().join("data"), dir.path().join("store"));
    fs::create_dir_all(data.join("sub")).unwrap();
    fs::write(data.join("a.bin"), Rng(1).bytes(50_000)).unwrap();
    fs::hard_link(data.join("a.bin"), data.join("b.bin")).unwrap();
    fs::hard_link(data.join("a.bin"), data.join("sub/c.bin")).unwrap();
    // 256 MiB with 4 KiB of data: a sparse file.
    let sparse = fs::File::create(data.join("sparse.img")).unwrap();
    sparse.set_len(256 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, &[7u8; 4096], 100 << 20).unwrap();
    drop(sparse);
    snap_ok(&store, &["init"]);
    snap_ok(&store, &["take", data.to_str().unwrap()]);
    let out = dir.path().join("out");
    snap_ok(
        &store,
        &["restore", "latest", "--to", out.to_str().unwrap()],
    );
    let r = out.join("data");
    let ino = |p: &str| fs::metadata(r.join(p)).unwrap().ino();
    assert_eq!(
        ino("a.bin"),
        ino("b.bin"),
        "hard links restored as one file"
    );
    assert_eq!(ino("a.bin"), ino("sub/c.bin"));
    assert_eq!(fs::read(r.join("b.bin")).unwrap(), Rng(1).bytes(50_000));
    let m = fs::metadata(r.join("sparse.img")).unwrap();
    assert_eq!(m.len(), 256 << 20);
    assert!(
        m.blocks() * 512 < 1 << 20,
        "sparse file came back with {} bytes allocated",
        m.blocks() * 512
    );
    let bytes = fs::read(r.join("sparse.img")).unwrap();
    assert_eq!(&bytes[100 << 20..(100 << 20) + 4096], &[7u8; 4096][..]);
    assert!(bytes[..100 << 20].iter().all(|b| *b == 0));
}

#[test]
fn completions_and_man_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    for shell in ["bash", "zsh", "fish"] {
        let out = snap_ok(&store, &["completions", shell]);
        assert!(
            out.contains("restore") && out.contains("recover"),
            "{shell}"
        );
    }
    let man = dir.path().join("man");
    snap_ok(&store, &["man", "--dir", man.to_str().unwrap()]);
    let page = fs::read_to_string(man.join("snap-restore.1")).unwrap();
    assert!(page.contains(".TH") && page.contains("in\\-place"));
}

#[test]
fn schedule_install_as_root_writes_system_units() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let config = dir.path().join("snap.toml");
    fs::write(
        &config,
        format!(
            "store = \"{}\"\n[jobs.backup]\naction = \"take\"\nschedule = \"daily 03:00\"\n",
            store.display()
        ),
    )
    .unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let out = Command::new(snap_bin())
        .env("USER", "somebody") // the real uid decides, not $USER
        .args([
            "--config",
            config.to_str().unwrap(),
            "schedule",
            "install",
            "--systemd",
            "--dry-run",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    if root {
        assert!(
            text.contains("# /etc/systemd/system/snap-backup.timer"),
            "{text}"
        );
        assert!(
            text.contains("systemctl daemon-reload && systemctl enable --now snap-backup.timer")
        );
    } else {
        assert!(text.contains("systemd/user/snap-backup.timer"), "{text}");
        assert!(text.contains("systemctl --user enable --now snap-backup.timer"));
    }
}

#[test]
fn configuration_expands_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("f"), "x").unwrap();
    let config = dir.path().join("snap.toml");
    fs::write(
        &config,
        "store = \"${SNAP_TEST_DIR}/store\"\n[sources.app]\npaths = [\"${SNAP_TEST_DIR}/data\", \"${SNAP_TEST_DIR}/missing\"]\nallow_missing = true\n",
    )
    .unwrap();
    let run = |env: Option<&std::path::Path>| {
        let mut c = Command::new(snap_bin());
        c.args(["--config", config.to_str().unwrap(), "take"]);
        if let Some(d) = env {
            c.env("SNAP_TEST_DIR", d);
        }
        c.output().unwrap()
    };
    let out = run(Some(dir.path()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("store/config").exists());
    let unset = run(None);
    assert_eq!(unset.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unset.stderr).contains("SNAP_TEST_DIR is not set"));
}
