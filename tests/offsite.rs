//! The off-site copy: sealed (age) so a bucket reader learns nothing, pushed
//! by a create-only credential, pruned and restored by a trusted one (through
//! a proxy that enforces permissions per credential in front of the GCS
//! emulator), remote retention that the next mirror does not undo, remote
//! repack, and a damaged local pack read from (and repaired from) the remote.

mod common;
use common::proxy::Proxy;
use common::*;
use std::fs;
use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

fn du(dir: &Path) -> u64 {
    files(dir).iter().map(|f| f.metadata().unwrap().len()).sum()
}

/// A data directory with an incompressible known file (one chunk) and a
/// database holding a known row.
fn data_with_secrets(dir: &Path) -> (PathBuf, Vec<u8>) {
    let data = dir.join("data");
    make_tree(&data, 41, 1);
    let secret = Rng(4242).bytes(12_000);
    fs::write(data.join("secret.bin"), &secret).unwrap();
    let db = rusqlite::Connection::open(data.join("app.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE candidates(id INTEGER PRIMARY KEY, email TEXT);
         INSERT INTO candidates(email) VALUES ('alice.secret@example.com');",
    )
    .unwrap();
    (data, secret)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_bucket_holds_no_plaintext_no_chunk_id_and_opens_only_with_the_identity() {
    let dir = tempfile::tempdir().unwrap();
    let (store, identity) = sealed_store(dir.path());
    let (data, secret) = data_with_secrets(dir.path());
    let id = snap_json(&store, &["take", data.to_str().unwrap()])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let sealed_dir = dir.path().join("sealed");
    let url = format!("file://{}", sealed_dir.display());
    snap_ok(&store, &["mirror", "--remote", &url]);
    // The control: the same data mirrored in plaintext shows the secret.
    let plain_store = dir.path().join("plain-store");
    snap_ok(&plain_store, &["init"]);
    snap_ok(&plain_store, &["take", data.to_str().unwrap()]);
    let plain_dir = dir.path().join("plain");
    let plain_url = format!("file://{}", plain_dir.display());
    snap_ok(
        &plain_store,
        &["mirror", "--plaintext", "--remote", &plain_url],
    );
    let window = &secret[5000..5064];
    let chunk_id = blake3::hash(&secret);
    let plain_hit = files(&plain_dir)
        .iter()
        .any(|f| contains(&fs::read(f).unwrap(), window));
    assert!(
        plain_hit,
        "the control must find the file in a plaintext copy"
    );
    let local_packs: Vec<String> = files(&store.join("packs"))
        .iter()
        .map(|p| p.file_stem().unwrap().to_str().unwrap().to_string())
        .collect();
    for f in files(&sealed_dir) {
        let bytes = fs::read(&f).unwrap();
        let name = f.to_str().unwrap();
        assert!(!contains(&bytes, window), "{name} holds the file's bytes");
        assert!(!contains(&bytes, b"alice.secret"), "{name} holds the row");
        assert!(
            !contains(&bytes, chunk_id.as_bytes()),
            "{name} holds a chunk id"
        );
        assert!(!contains(&bytes, chunk_id.to_hex().as_bytes()));
        assert!(!name.contains(chunk_id.to_hex().as_str()));
        assert!(
            !local_packs.iter().any(|p| name.contains(p.as_str())),
            "{name} is a pack id"
        );
        assert!(!name.contains(&id), "{name} is a snapshot id");
    }
    // No identity, a wrong identity: clear errors (exit 2), nothing restored.
    let to = dir.path().join("out");
    let args = [
        "restore",
        &id,
        "--remote",
        &url,
        "--to",
        to.to_str().unwrap(),
    ];
    let none = snap_env(&[], &dir.path().join("nowhere"), &args);
    assert_eq!(none.status.code(), Some(2), "{}", stderr(&none));
    assert!(stderr(&none).contains("encrypted"), "{}", stderr(&none));
    let other = dir.path().join("other");
    snap_ok(&dir.path().join("other-store"), &["init"]);
    snap_ok(
        &dir.path().join("other-store"),
        &["key", "generate", "--out", other.to_str().unwrap()],
    );
    let wrong = snap_env(
        &[("SNAP_IDENTITY_FILE", other.to_str().unwrap())],
        &dir.path().join("nowhere"),
        &args,
    );
    assert_eq!(wrong.status.code(), Some(2), "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains("wrong key"), "{}", stderr(&wrong));
    assert!(!to.exists());
    // The right one restores bit for bit, from the sealed copy alone.
    let right = snap_env(
        &[("SNAP_IDENTITY_FILE", &identity)],
        &dir.path().join("nowhere"),
        &args,
    );
    assert!(right.status.success(), "{}", stderr(&right));
    assert_eq!(fingerprint(&to.join("data")), fingerprint(&data));
}

#[test]
fn a_record_the_remote_forgot_is_not_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let (store, identity) = sealed_store(dir.path());
    let (data, _) = data_with_secrets(dir.path());
    let url = format!("file://{}", dir.path().join("remote").display());
    for i in 0..4 {
        fs::write(data.join("day.txt"), format!("day {i}")).unwrap();
        snap_ok(&store, &["take", data.to_str().unwrap()]);
    }
    snap_ok(&store, &["mirror", "--remote", &url]);
    let env = [("SNAP_IDENTITY_FILE", identity.as_str())];
    let gc = snap_env(&env, &store, &["gc", "--remote", &url, "--keep-last", "1"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    let listed = |store: &Path| {
        let out = snap_env(&env, store, &["--json", "list", "--remote", &url]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(listed(&store), 1);
    // The next mirror (the remote policy is shorter than the local one)
    // must not upload the 3 forgotten records again.
    let m = snap_json(&store, &["mirror", "--remote", &url]);
    assert_eq!(m["records_uploaded"], 0, "{m}");
    assert_eq!(listed(&store), 1);
    fs::write(data.join("day.txt"), "day 5").unwrap();
    snap_ok(&store, &["take", data.to_str().unwrap()]);
    let m = snap_json(&store, &["mirror", "--remote", &url]);
    assert_eq!(m["records_uploaded"], 1, "{m}");
    assert_eq!(listed(&store), 2);
    let v = snap_env(&env, &store, &["verify", "--remote", &url, "--read-data"]);
    assert!(v.status.success(), "{}", stderr(&v));
}

#[test]
fn remote_gc_repacks_the_bucket_to_within_10_percent_of_the_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    snap_ok(&store, &["init", "--pack-size", "1048576"]);
    let identity = dir.path().join("identity");
    snap_ok(
        &store,
        &["key", "generate", "--out", identity.to_str().unwrap()],
    );
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    let remote = dir.path().join("remote");
    let url = format!("file://{}", remote.display());
    // Each day rewrites part of the data: old packs are left partly dead.
    for day in 0..8u64 {
        fs::write(data.join("daily"), Rng(day + 1000).bytes(300_000)).unwrap();
        for f in 0..6u64 {
            if (f + day) % 3 == 0 {
                fs::write(data.join(format!("f{f}")), Rng(day * 10 + f).bytes(300_000)).unwrap();
            }
        }
        snap_ok(&store, &["take", data.to_str().unwrap()]);
        snap_ok(&store, &["mirror", "--remote", &url]);
    }
    let local_policy = ["--keep-last", "2", "--repack-threshold", "10"];
    snap_ok(&store, &[&["gc"][..], &local_policy].concat());
    // The daily mirror after the local gc: its hold names what the store
    // still holds (and so may name again), nothing else.
    snap_ok(&store, &["mirror", "--remote", &url]);
    let env = [("SNAP_IDENTITY_FILE", identity.to_str().unwrap())];
    let operator = dir.path().join("operator");
    let remote_gc = |policy: &[&str]| {
        let g = snap_env(
            &env,
            &operator,
            &[&["--json", "gc", "--remote", &url][..], policy].concat(),
        );
        assert!(g.status.success(), "{}", stderr(&g));
        let v = snap_env(
            &env,
            &operator,
            &["verify", "--remote", &url, "--read-data"],
        );
        assert!(v.status.success(), "{}", stderr(&v));
        serde_json::from_slice::<serde_json::Value>(&g.stdout).unwrap()
    };
    // A longer remote tier: packs the store let go are repacked remotely,
    // keeping what the older remote snapshots need.
    let report = remote_gc(&["--keep-last", "5", "--repack-threshold", "10"]);
    assert!(report["packs_repacked"].as_u64().unwrap() > 0, "{report}");
    let oldest = report["plan"]["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["keep"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let to = dir.path().join("oldest");
    let r = snap_env(
        &env,
        &operator,
        &[
            "restore",
            &oldest,
            "--remote",
            &url,
            "--to",
            to.to_str().unwrap(),
        ],
    );
    assert!(r.status.success(), "{}", stderr(&r));
    // The same policy as the local store: the bucket comes within 10 % of it.
    let report = remote_gc(&local_policy);
    assert!(report["packs_deleted"].as_u64().unwrap() > 0, "{report}");
    let local = du(&store.join("packs"));
    let bucket = du(&remote.join("packs"));
    eprintln!("local packs {local} B, bucket packs {bucket} B");
    assert!(
        (bucket as f64) <= local as f64 * 1.10,
        "bucket {bucket} B vs local {local} B"
    );
}

#[test]
fn a_damaged_local_pack_is_read_from_the_remote_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let (store, identity) = sealed_store(dir.path());
    let (data, _) = data_with_secrets(dir.path());
    let id = snap_json(&store, &["take", data.to_str().unwrap()])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("file://{}", dir.path().join("remote").display());
    snap_ok(&store, &["mirror", "--remote", &url]);
    let config = dir.path().join("snap.toml");
    fs::write(
        &config,
        format!(
            "store = {:?}\n[remotes.bucket]\nurl = {url:?}\nidentity_file = {identity:?}\n",
            store.to_str().unwrap()
        ),
    )
    .unwrap();
    let cfg = ["--config", config.to_str().unwrap()];
    // Damage every local pack in its middle.
    let packs = files(&store.join("packs"));
    for p in &packs {
        let mut b = fs::read(p).unwrap();
        let mid = b.len() / 3;
        b[mid] ^= 0x55;
        fs::write(p, b).unwrap();
    }
    let v = snap_env(
        &[],
        &store,
        &[&cfg[..], &["verify", "--read-data"]].concat(),
    );
    assert_eq!(v.status.code(), Some(3), "verify must report the damage");
    let to = dir.path().join("out");
    let r = snap_env(
        &[],
        &store,
        &[&cfg[..], &["restore", &id, "--to", to.to_str().unwrap()]].concat(),
    );
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(fingerprint(&to.join("data")), fingerprint(&data));
    assert!(
        stderr(&r).contains("read from the remote"),
        "{}",
        stderr(&r)
    );
    let named = packs
        .iter()
        .any(|p| stderr(&r).contains(p.file_stem().unwrap().to_str().unwrap()));
    assert!(named, "the report names the damaged pack: {}", stderr(&r));
    let fix = snap_env(&[], &store, &[&cfg[..], &["repair", "packs"]].concat());
    assert!(fix.status.success(), "{}", stderr(&fix));
    snap_ok(&store, &["verify", "--read-data"]);
}

#[test]
fn a_create_only_server_mirrors_and_only_the_trusted_credential_prunes_and_restores() {
    if emulator_bin().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(&dir.path().join("emu"));
    let proxy = Proxy::start(emu.port);
    let host = format!("http://127.0.0.1:{}", proxy.port);
    let (store, identity) = sealed_store(dir.path());
    let (data, _) = data_with_secrets(dir.path());
    let url = "gs://snaptest/server";
    let server = [
        ("STORAGE_EMULATOR_HOST", host.as_str()),
        ("GOOGLE_OAUTH_ACCESS_TOKEN", "creator"),
    ];
    let pruner = [
        ("STORAGE_EMULATOR_HOST", host.as_str()),
        ("GOOGLE_OAUTH_ACCESS_TOKEN", "pruner"),
        ("SNAP_IDENTITY_FILE", identity.as_str()),
    ];
    let mut ids = Vec::new();
    for i in 0..3 {
        fs::write(data.join("day.txt"), format!("day {i}")).unwrap();
        ids.push(
            snap_json(&store, &["take", data.to_str().unwrap()])["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        let m = snap_env(&server, &store, &["mirror", "--remote", url]);
        assert!(
            m.status.success(),
            "a create-only mirror failed: {}",
            stderr(&m)
        );
    }
    // The server's credential cannot prune or read: a clear permission error, exit 8.
    for args in [
        vec!["gc", "--remote", url, "--keep-last", "1"],
        vec![
            "restore",
            "latest",
            "--remote",
            url,
            "--to",
            "/nonexistent/x",
        ],
    ] {
        let out = snap_env(&server, &store, &args);
        assert_eq!(out.status.code(), Some(8), "{args:?}: {}", stderr(&out));
        let e = stderr(&out);
        assert!(e.contains("permission denied for"), "{e}");
        assert!(e.contains("storage.objects."), "{e}");
        assert!(!e.contains("run it again"), "{e}");
    }
    // The trusted credential prunes; the server's next mirror does not undo it.
    let g = snap_env(
        &pruner,
        &dir.path().join("operator"),
        &["gc", "--remote", url, "--keep-last", "1"],
    );
    assert!(g.status.success(), "{}", stderr(&g));
    fs::write(data.join("day.txt"), "day 3").unwrap();
    snap_ok(&store, &["take", data.to_str().unwrap()]);
    let m = snap_env(&server, &store, &["--json", "mirror", "--remote", url]);
    assert!(m.status.success(), "{}", stderr(&m));
    let listed = snap_env(
        &pruner,
        &dir.path().join("operator"),
        &["--json", "list", "--remote", url],
    );
    assert!(listed.status.success(), "{}", stderr(&listed));
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let to = dir.path().join("out");
    let r = snap_env(
        &pruner,
        &dir.path().join("operator"),
        &[
            "restore",
            "latest",
            "--remote",
            url,
            "--to",
            to.to_str().unwrap(),
        ],
    );
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(fingerprint(&to.join("data")), fingerprint(&data));
    let v = snap_env(
        &pruner,
        &dir.path().join("operator"),
        &["verify", "--remote", url, "--read-data"],
    );
    assert!(v.status.success(), "{}", stderr(&v));
}

/// Restores that read sealed packs in long ranges (8 MiB batches, cut into
/// 1 MiB pieces decrypted in parallel, starting inside age chunks) and in
/// short ones (one file of a snapshot) come back bit for bit, from a view of
/// the remote alone, with many files restored at once.
#[test]
fn long_and_short_ranged_reads_of_sealed_packs_restore_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let (store, identity) = sealed_store(dir.path());
    let data = dir.path().join("data");
    make_tree(&data, 7, 1);
    let mut rng = Rng(99);
    for (i, size) in [(1, 9 << 20), (2, 2_500_000), (3, 1_048_577)] {
        fs::write(data.join(format!("big-{i}.bin")), rng.bytes(size)).unwrap();
    }
    fs::write(data.join("text.log"), rng.text(3 << 20)).unwrap();
    snap_ok(&store, &["take", data.to_str().unwrap()]);
    let url = format!("file://{}", dir.path().join("sealed").display());
    snap_ok(&store, &["mirror", "--remote", &url]);
    let env = [("SNAP_IDENTITY_FILE", identity.as_str())];
    let nowhere = dir.path().join("no-store");
    // Restores from the remote alone (no local store), `extra` args added.
    let restore = |to: &Path, extra: &[&str]| {
        let mut args = vec![
            "restore",
            "latest",
            "--remote",
            &url,
            "--to",
            to.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = snap_env(&env, &nowhere, &args);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    let whole = dir.path().join("whole");
    restore(&whole, &[]);
    assert_eq!(fingerprint(&whole.join("data")), fingerprint(&data));
    let one = dir.path().join("one");
    restore(&one, &["--path", "data/big-3.bin"]);
    assert_eq!(
        fs::read(one.join("big-3.bin")).unwrap(),
        fs::read(data.join("big-3.bin")).unwrap()
    );
}
