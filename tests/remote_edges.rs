//! A remote at the edges a disaster brings: a wiped bucket that every job
//! reported as ok, a second spelling of a remote's URL that made every
//! sealed snapshot unreadable, one damaged local pack that held back every
//! record, `restore --remote` reading the damaged local copy, and a missing
//! credential reported as a network outage.

mod common;
use common::proxy::Proxy;
use common::*;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn ids(listed: &Output) -> Vec<String> {
    assert!(listed.status.success(), "{}", stderr(listed));
    let v: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

// A wiped bucket stayed unusable while every job reported ok: `mirror
// --rescan` said "13 packs already there", and `list`, `restore --remote`
// and `clone` failed with "holds no snap store". The server, with create
// permission alone, must notice (a create that succeeds where the object
// should already exist) and heal it, and say so in the job log, the
// metrics and `status`.
#[test]
fn a_wiped_bucket_is_noticed_and_healed_by_a_create_only_job() {
    if emulator_bin().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut emu = Emulator::start(&dir.path().join("emu"));
    let (store, identity) = sealed_store(dir.path());
    let data = dir.path().join("data");
    make_tree(&data, 5, 2);
    let config = dir.path().join("snap.toml");
    let (log, prom) = (dir.path().join("jobs.jsonl"), dir.path().join("snap.prom"));
    fs::write(
        &config,
        format!(
            "store = \"{}\"\n[remotes.offsite]\nurl = \"gs://snaptest/app\"\n\
             [jobs.offsite]\naction = \"mirror\"\nremote = \"offsite\"\n\
             [monitoring]\nlog = \"{}\"\ntextfile = \"{}\"\n",
            store.display(),
            log.display(),
            prom.display()
        ),
    )
    .unwrap();
    let job = |host: &str| {
        let server = [
            ("STORAGE_EMULATOR_HOST", host),
            ("GOOGLE_OAUTH_ACCESS_TOKEN", "creator"),
        ];
        snap_env(
            &server,
            &store,
            &["--config", config.to_str().unwrap(), "run", "offsite"],
        )
    };
    let mut proxy = Proxy::start(emu.port);
    let mut host = format!("http://127.0.0.1:{}", proxy.port);
    let first = take_day(&store, &data, 0);
    let out = job(&host);
    assert!(out.status.success(), "{}", stderr(&out));
    // The bucket is wiped (deleted and made again, empty).
    drop(proxy);
    emu.stop();
    fs::remove_dir_all(dir.path().join("emu")).unwrap();
    emu.restart();
    proxy = Proxy::start(emu.port);
    host = format!("http://127.0.0.1:{}", proxy.port);
    let second = take_day(&store, &data, 1);
    let out = job(&host);
    assert!(out.status.success(), "{}", stderr(&out));
    let last: serde_json::Value =
        serde_json::from_str(fs::read_to_string(&log).unwrap().lines().last().unwrap()).unwrap();
    assert_eq!(last["outcome"], "ok");
    assert!(
        last["warnings"][0]
            .as_str()
            .unwrap()
            .contains("had lost its objects"),
        "{last}"
    );
    let metrics = fs::read_to_string(&prom).unwrap();
    assert!(
        metrics.contains("snap_last_run_warnings{job=\"offsite\",action=\"mirror\"} 1"),
        "{metrics}"
    );
    let status = snap_env(
        &[],
        &store,
        &["--config", config.to_str().unwrap(), "status"],
    );
    assert!(String::from_utf8_lossy(&status.stdout).contains("had lost its objects"));
    // The operator, from the bucket alone, finds both snapshots again.
    let operator = [
        ("STORAGE_EMULATOR_HOST", host.as_str()),
        ("GOOGLE_OAUTH_ACCESS_TOKEN", "pruner"),
        ("SNAP_IDENTITY_FILE", identity.as_str()),
    ];
    let elsewhere = dir.path().join("operator");
    let listed = snap_env(
        &operator,
        &elsewhere,
        &["--json", "list", "--remote", "gs://snaptest/app"],
    );
    assert_eq!(ids(&listed), vec![first, second]);
    let to = dir.path().join("out");
    let r = snap_env(
        &operator,
        &elsewhere,
        &[
            "restore",
            "latest",
            "--remote",
            "gs://snaptest/app",
            "--to",
            to.to_str().unwrap(),
        ],
    );
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(fingerprint(&to.join("data")), fingerprint(&data));
    // Healed: the next run has nothing to say.
    let out = job(&host);
    assert!(out.status.success());
    let last: serde_json::Value =
        serde_json::from_str(fs::read_to_string(&log).unwrap().lines().last().unwrap()).unwrap();
    assert!(last["warnings"].is_null(), "{last}");
}

// `--rescan` (with list permission) never re-sent `config` and `keys/`.
#[test]
fn rescan_sends_again_everything_a_wiped_remote_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (store, identity) = sealed_store(dir.path());
    let data = dir.path().join("data");
    make_tree(&data, 3, 1);
    take_day(&store, &data, 0);
    let remote = dir.path().join("remote");
    let url = format!("file://{}", remote.display());
    snap_ok(&store, &["mirror", "--remote", &url]);
    fs::remove_dir_all(&remote).unwrap();
    fs::create_dir_all(&remote).unwrap();
    let m = snap_json(&store, &["mirror", "--remote", &url, "--rescan"]);
    assert!(m["packs_uploaded"].as_u64().unwrap() > 0, "{m}");
    let elsewhere = dir.path().join("operator");
    let listed = snap_env(
        &[("SNAP_IDENTITY_FILE", identity.as_str())],
        &elsewhere,
        &["--json", "list", "--remote", &url],
    );
    assert_eq!(ids(&listed).len(), 1);
}

// `mirror --remote file:///r/A/` after `file:///r/A` (or through a
// symlink, or to a copy of the bucket) re-sent everything under a fresh
// naming key, and from then on every snapshot was "corrupt remote record".
#[test]
fn a_remote_is_one_remote_however_its_url_is_spelled() {
    let dir = tempfile::tempdir().unwrap();
    let (store, identity) = sealed_store(dir.path());
    let data = dir.path().join("data");
    make_tree(&data, 7, 2);
    let a = dir.path().join("r/A");
    fs::create_dir_all(&a).unwrap();
    let mut all = vec![take_day(&store, &data, 0)];
    let mirror = |url: &str| snap_json(&store, &["mirror", "--remote", url]);
    mirror(&format!("file://{}", a.display()));
    all.push(take_day(&store, &data, 1));
    let m = mirror(&format!("file://{}/", a.display()));
    assert_eq!(m["records_uploaded"], 1, "only the new snapshot: {m}");
    std::os::unix::fs::symlink(&a, dir.path().join("r/L")).unwrap();
    all.push(take_day(&store, &data, 2));
    let m = mirror(&format!("file://{}//", dir.path().join("r/L").display()));
    assert_eq!(
        m["records_uploaded"], 1,
        "a symlink is the same remote: {m}"
    );
    // A copy of the bucket, mirrored to under its own name.
    let b = dir.path().join("r/B");
    let cp = Command::new("cp")
        .args(["-a", a.to_str().unwrap(), b.to_str().unwrap()])
        .status();
    assert!(cp.unwrap().success());
    all.push(take_day(&store, &data, 3));
    mirror(&format!("file://{}", b.display()));
    let operator = [("SNAP_IDENTITY_FILE", identity.as_str())];
    let elsewhere = dir.path().join("operator");
    for remote in [&a, &b] {
        let url = format!("file://{}", remote.display());
        let listed = ids(&snap_env(
            &operator,
            &elsewhere,
            &["--json", "list", "--remote", &url],
        ));
        let want = if remote == &a { &all[..3] } else { &all[..] };
        assert_eq!(listed, want, "{url}");
        let v = snap_env(
            &operator,
            &elsewhere,
            &["verify", "--all", "--read-data", "--remote", &url],
        );
        assert!(v.status.success(), "{url}: {}", stderr(&v));
        for id in want {
            let to = dir.path().join(format!("out-{}", &id[..8]));
            let r = snap_env(
                &operator,
                &elsewhere,
                &[
                    "restore",
                    id,
                    "--remote",
                    &url,
                    "--to",
                    to.to_str().unwrap(),
                ],
            );
            assert!(r.status.success(), "{url} {id}: {}", stderr(&r));
            fs::remove_dir_all(&to).unwrap();
        }
    }
}

fn flip(path: &Path, at: usize) {
    let mut b = fs::read(path).unwrap();
    b[at] ^= 0x40;
    fs::write(path, b).unwrap();
}

// One corrupt local pack made `mirror` hold back every snapshot record, so
// the bucket had no snapshot at all. Only the snapshots that need the
// damaged pack are held back, and named; the others are sent.
#[test]
fn a_damaged_pack_holds_back_only_the_snapshots_that_need_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, identity) = sealed_store(dir.path());
    let (x, y) = (dir.path().join("x"), dir.path().join("y"));
    make_tree(&x, 11, 1);
    let bad = snap_json(&store, &["take", x.to_str().unwrap()])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let damaged = pack_files(&store);
    fs::create_dir_all(&y).unwrap();
    fs::write(y.join("only-here"), Rng(12).bytes(300_000)).unwrap();
    let good = snap_json(&store, &["take", y.to_str().unwrap()])["id"]
        .as_str()
        .unwrap()
        .to_string();
    for p in &damaged {
        flip(p, 100);
    }
    let url = format!("file://{}", dir.path().join("remote").display());
    let out = snap(&store, &["--json", "mirror", "--remote", &url]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["held_back"].as_array().unwrap().len(), 1, "{m}");
    assert!(m["held_back"][0].as_str().unwrap().contains(&bad), "{m}");
    let listed = snap_env(
        &[("SNAP_IDENTITY_FILE", identity.as_str())],
        &dir.path().join("operator"),
        &["--json", "list", "--remote", &url],
    );
    assert_eq!(ids(&listed), vec![good]);
}

// With every local pack damaged, `restore latest --remote R` failed with
// "corrupt chunk": it read the local copies. `--remote` reads the remote.
#[test]
fn restore_from_a_remote_never_reads_a_damaged_local_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (store, identity) = sealed_store(dir.path());
    let data = dir.path().join("data");
    make_tree(&data, 13, 2);
    take_day(&store, &data, 0);
    let url = format!("file://{}", dir.path().join("remote").display());
    snap_ok(&store, &["mirror", "--remote", &url]);
    for p in pack_files(&store) {
        flip(&p, 10);
    }
    let to = dir.path().join("out");
    let r = snap_env(
        &[("SNAP_IDENTITY_FILE", identity.as_str())],
        &store,
        &[
            "restore",
            "latest",
            "--remote",
            &url,
            "--to",
            to.to_str().unwrap(),
        ],
    );
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(fingerprint(&to.join("data")), fingerprint(&data));
}

// A missing credential was reported as a network outage (exit 6, "run it
// again once the remote is reachable", its cause printed three times).
#[test]
fn a_missing_credential_has_its_own_exit_code_and_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let data = dir.path().join("data");
    make_tree(&data, 1, 1);
    take_day(&store, &data, 0);
    let out = Command::new(snap_bin())
        .env_remove("AZURE_STORAGE_CONNECTION_STRING")
        .args(["--store", store.to_str().unwrap(), "mirror", "--plaintext"])
        .args(["--remote", "azblob://container/prefix"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("no credential for azblob://container/prefix"),
        "{e}"
    );
    assert!(e.contains("AZURE_STORAGE_CONNECTION_STRING"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}
