//! Many stores, one bucket: two stores that mirror into one prefix keep
//! each other's packs through remote gc; hosts mirror into a fleet bucket
//! with catalogs, and the operator sees, lists, restores and prunes them
//! from the bucket alone.

mod common;
use common::*;
use std::fs;
use std::path::Path;

// A host rebuilt from the bucket (`clone`) while the old one still ran:
// both mirror into one prefix, and remote gc kept only the packs the newest
// hold named, so a pack the other store still held (and its next snapshot
// named again) was deleted once no record on the remote needed it.
#[test]
fn two_stores_in_one_prefix_keep_each_others_packs_through_remote_gc() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let data_a = dir.path().join("data-a");
    make_tree(&data_a, 1, 1);
    take_day(&a, &data_a, 0);
    let remote = dir.path().join("remote");
    let url = format!("file://{}", remote.display());
    snap_ok(&a, &["mirror", "--remote", &url, "--plaintext"]);
    let b = dir.path().join("b");
    snap_ok(&b, &["clone", "--remote", &url]);
    // B's own file: in its first snapshot, gone from its second, back in its third.
    let data_b = dir.path().join("data-b");
    make_tree(&data_b, 2, 1);
    let own: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(data_b.join("own.bin"), &own).unwrap();
    take_day(&b, &data_b, 1);
    fs::remove_file(data_b.join("own.bin")).unwrap();
    take_day(&b, &data_b, 2);
    snap_ok(&b, &["mirror", "--remote", &url, "--plaintext"]);
    // A mirrors last: its hold is the newest, and names none of B's packs.
    take_day(&a, &data_a, 3);
    snap_ok(&a, &["mirror", "--remote", &url, "--plaintext"]);
    let operator = dir.path().join("operator");
    snap_ok(&operator, &["gc", "--remote", &url, "--keep-last", "1"]);
    // B still holds its first snapshot's packs, so its third names them again.
    fs::write(data_b.join("own.bin"), &own).unwrap();
    let third = take_day(&b, &data_b, 4);
    snap_ok(&b, &["mirror", "--remote", &url, "--plaintext"]);
    let out = dir.path().join("out");
    snap_ok(
        &operator,
        &[
            "restore",
            "--remote",
            &url,
            &third,
            "--to",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(fingerprint(&out.join("data-b")), fingerprint(&data_b));
    let v = snap(&operator, &["verify", "--remote", &url]);
    assert!(v.status.success(), "{}", stderr(&v));
}

/// A host's store sealed to the operator's recipient (`recipients`).
fn host_store(dir: &Path, name: &str, recipients: &Path) -> std::path::PathBuf {
    let store = dir.join(name);
    snap_ok(&store, &["init"]);
    fs::create_dir_all(store.join("mirror")).unwrap();
    fs::copy(recipients, store.join("mirror/recipients")).unwrap();
    store
}

fn ok_out(o: std::process::Output) -> Vec<u8> {
    assert!(o.status.success(), "{}", stderr(&o));
    o.stdout
}

fn store_id(store: &Path) -> String {
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(store.join("config")).unwrap()).unwrap();
    config["store_id"].as_str().unwrap().to_string()
}

// Two hosts (one hostname, as cloned VMs have) mirror into one bucket,
// each into its own prefix; the operator, with no store of its own, sees
// both from their catalogs, lists, restores, verifies and prunes each by
// store id, and is told when one is over its budget.
#[test]
fn an_operator_sees_lists_restores_and_prunes_every_host_from_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let (operator_store, identity) = sealed_store(&dir.path().join("operator"));
    let recipients = operator_store.join("mirror/recipients");
    let bucket = format!("file://{}", dir.path().join("bucket").display());
    let mut hosts = Vec::new();
    for (n, name) in ["web", "worker"].iter().enumerate() {
        let store = host_store(dir.path(), name, &recipients);
        let data = dir.path().join(format!("data-{name}"));
        make_tree(&data, n as u64 + 7, 1);
        let mut ids = Vec::new();
        for day in 0..3 {
            ids.push(take_day(&store, &data, day));
            snap_ok(&store, &["mirror", "--remote", &bucket, "--fleet"]);
        }
        hosts.push((store_id(&store), data, ids));
    }
    // Status lists hosts by store id.
    hosts.sort_by(|a, b| a.0.cmp(&b.0));
    let env = [("SNAP_IDENTITY_FILE", identity.as_str())];
    let nowhere = dir.path().join("no-store");
    let status = snap_env(
        &env,
        &nowhere,
        &["--json", "fleet", "status", "--remote", &bucket],
    );
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["hosts"].as_array().unwrap().len(), 2, "{v}");
    for (h, (id, data, ids)) in v["hosts"].as_array().unwrap().iter().zip(&hosts) {
        assert_eq!(h["store_id"], id.as_str());
        let path = std::path::absolute(data).unwrap();
        let newest = &h["paths"][0];
        assert_eq!(newest["path"], path.to_str().unwrap(), "{h}");
        assert_eq!(newest["id"], ids[2].as_str(), "{h}");
        assert_eq!(h["summary"]["records"], 3, "{h}");
    }
    // Two requests a host, and one to find them.
    assert_eq!(v["requests"], 5, "{v}");
    // A host name two hosts share is refused, naming both store ids.
    let hostname = v["hosts"][0]["host"].as_str().unwrap().to_string();
    let both = snap_env(
        &env,
        &nowhere,
        &["list", "--remote", &bucket, "--fleet", "--host", &hostname],
    );
    assert_eq!(both.status.code(), Some(2));
    assert!(stderr(&both).contains(&hosts[1].0), "{}", stderr(&both));
    // By store id (a prefix will do): list, restore, verify, prune.
    let (id, data, ids) = &hosts[1];
    let host = &id[..8];
    let fleet = ["--remote", bucket.as_str(), "--fleet", "--host", host];
    let listed = snap_env(&env, &nowhere, &[&["--json", "list"], &fleet[..]].concat());
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
    let out = dir.path().join("restored");
    let restore = [
        &["restore"],
        &fleet[..],
        &["latest", "--to", out.to_str().unwrap()],
    ]
    .concat();
    ok(snap_env(&env, &nowhere, &restore));
    assert_eq!(
        fingerprint(&out.join(data.file_name().unwrap())),
        fingerprint(data)
    );
    ok(snap_env(
        &env,
        &nowhere,
        &[&["verify"], &fleet[..]].concat(),
    ));
    ok(snap_env(
        &env,
        &nowhere,
        &[&["gc"], &fleet[..], &["--keep-last", "1"]].concat(),
    ));
    let listed = snap_env(&env, &nowhere, &[&["--json", "list"], &fleet[..]].concat());
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["id"], ids[2].as_str(), "{listed}");
    // gc left the host one catalog, without the forgotten records.
    let catalogs = dir.path().join(format!("bucket/hosts/{id}/catalogs"));
    assert_eq!(fs::read_dir(&catalogs).unwrap().count(), 1);
    // The other host was not touched.
    let other = [
        "--remote",
        bucket.as_str(),
        "--fleet",
        "--host",
        &hosts[0].0[..8],
    ];
    let listed = snap_env(&env, &nowhere, &[&["--json", "list"], &other[..]].concat());
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
    let ids0 = &hosts[0].2;
    let diff = [
        &["--json", "diff"],
        &other[..],
        &[ids0[0].as_str(), ids0[2].as_str()],
    ]
    .concat();
    let diff: serde_json::Value =
        serde_json::from_slice(&ok_out(snap_env(&env, &nowhere, &diff))).unwrap();
    assert!(!diff["changes"].as_array().unwrap().is_empty(), "{diff}");
    // Over budget: exit 7, and the textfile says which host.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let textfile = dir.path().join("fleet.prom");
    let over = snap_env(
        &env,
        &nowhere,
        &[
            "fleet",
            "status",
            "--remote",
            &bucket,
            "--max-age",
            "1s",
            "--textfile",
            textfile.to_str().unwrap(),
        ],
    );
    assert_eq!(over.status.code(), Some(7), "{}", stderr(&over));
    let prom = fs::read_to_string(&textfile).unwrap();
    assert!(
        prom.contains(&format!(
            "snap_fleet_over_budget{{store_id=\"{}\"",
            hosts[0].0
        )),
        "{prom}"
    );
    // Without the identity, the catalogs cannot be opened: said, exit 7.
    let blind = snap(&nowhere, &["fleet", "status", "--remote", &bucket]);
    assert_eq!(blind.status.code(), Some(7), "{}", stderr(&blind));
    assert!(String::from_utf8_lossy(&blind.stdout).contains("identity"));
}

// A host rebuilt from the bucket (`clone --host`) carries on in its old
// prefix as itself: nothing is sent again, its next snapshot joins the old
// ones, and the operator sees one host.
#[test]
fn a_host_rebuilt_from_the_bucket_carries_on_in_its_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let (operator_store, identity) = sealed_store(&dir.path().join("operator"));
    let bucket = format!("file://{}", dir.path().join("bucket").display());
    let old = host_store(dir.path(), "old", &operator_store.join("mirror/recipients"));
    let data = dir.path().join("data");
    make_tree(&data, 11, 1);
    for day in 0..2 {
        take_day(&old, &data, day);
        snap_ok(&old, &["mirror", "--remote", &bucket, "--fleet"]);
    }
    let id = store_id(&old);
    let env = [("SNAP_IDENTITY_FILE", identity.as_str())];
    let new = dir.path().join("new");
    ok(snap_env(
        &env,
        &new,
        &["clone", "--remote", &bucket, "--fleet", "--host", &id],
    ));
    assert_eq!(store_id(&new), id);
    let third = take_day(&new, &data, 2);
    let m = snap_json(&new, &["mirror", "--remote", &bucket, "--fleet"]);
    assert_eq!(m["records_uploaded"], 1, "only the new snapshot: {m}");
    assert_eq!(m["packs_uploaded"], 1, "only its pack: {m}");
    let nowhere = dir.path().join("no-store");
    let s = snap_env(
        &env,
        &nowhere,
        &["--json", "fleet", "status", "--remote", &bucket],
    );
    let v: serde_json::Value = serde_json::from_slice(&s.stdout).unwrap();
    assert_eq!(v["hosts"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["hosts"][0]["paths"][0]["id"], third.as_str(), "{v}");
    let fleet = [
        "--remote",
        bucket.as_str(),
        "--fleet",
        "--host",
        id.as_str(),
    ];
    let listed = snap_env(&env, &nowhere, &[&["--json", "list"], &fleet[..]].concat());
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
    ok(snap_env(
        &env,
        &nowhere,
        &[&["verify"], &fleet[..]].concat(),
    ));
}

/// Starts `args` (to be killed, perhaps after it finished).
fn started(store: &Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Child {
    let mut c = std::process::Command::new(snap_bin());
    c.arg("--store")
        .arg(store)
        .args(args)
        .envs(env.iter().copied());
    let child = c
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child
}

// The host's mirror and the operator's gc of that host, both killed at
// random moments (often at once): once each completes again, the catalogs
// name exactly the records on the remote, every one restores, and the
// status names the newest. `SNAP_FLEET_KILLS` (default 12) rounds.
#[test]
fn a_host_and_the_operator_killed_at_random_leave_catalogs_that_match_the_records() {
    let kills: u64 = std::env::var("SNAP_FLEET_KILLS").map_or(12, |s| s.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let (operator_store, identity) = sealed_store(&dir.path().join("operator"));
    let bucket = format!("file://{}", dir.path().join("bucket").display());
    let host = host_store(
        dir.path(),
        "host",
        &operator_store.join("mirror/recipients"),
    );
    let id = store_id(&host);
    let data = dir.path().join("data");
    make_tree(&data, 5, 1);
    let env = [("SNAP_IDENTITY_FILE", identity.as_str())];
    let nowhere = dir.path().join("no-store");
    let fleet = [
        "--remote",
        bucket.as_str(),
        "--fleet",
        "--host",
        id.as_str(),
    ];
    let gc = [&["gc"], &fleet[..], &["--keep-last", "2"]].concat();
    let mut seed = 0x2545f4914f6cdd1du64;
    let mut rand = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut last = String::new();
    let mut cut = [0u32; 2];
    for round in 0..kills {
        last = take_day(&host, &data, round as u32);
        let m = started(&host, &[], &["mirror", "--remote", &bucket, "--fleet"]);
        let g = started(&nowhere, &env, &gc);
        for (k, mut c) in [m, g].into_iter().enumerate() {
            std::thread::sleep(std::time::Duration::from_millis(rand(45)));
            if c.try_wait().unwrap().is_none() {
                cut[k] += 1;
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    eprintln!(
        "{kills} rounds: {} mirrors and {} gcs killed mid-run",
        cut[0], cut[1]
    );
    snap_ok(&host, &["mirror", "--remote", &bucket, "--fleet"]);
    ok(snap_env(&env, &nowhere, &gc));
    let listed = ok_out(snap_env(
        &env,
        &nowhere,
        &[&["--json", "list"], &fleet[..]].concat(),
    ));
    let listed: serde_json::Value = serde_json::from_slice(&listed).unwrap();
    let mut on_remote: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    on_remote.sort();
    let cat = [
        "--json",
        "fleet",
        "list",
        "--remote",
        bucket.as_str(),
        "--host",
        id.as_str(),
    ];
    let cat: serde_json::Value =
        serde_json::from_slice(&ok_out(snap_env(&env, &nowhere, &cat))).unwrap();
    let mut catalogued: Vec<&str> = cat[0]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    catalogued.sort();
    assert_eq!(
        catalogued, on_remote,
        "the catalogs name exactly the records"
    );
    assert!(on_remote.contains(&last.as_str()));
    ok(snap_env(
        &env,
        &nowhere,
        &[&["verify", "--read-data"], &fleet[..]].concat(),
    ));
    let out = dir.path().join("restored");
    let restore = [
        &["restore"],
        &fleet[..],
        &[last.as_str(), "--to", out.to_str().unwrap()],
    ]
    .concat();
    ok(snap_env(&env, &nowhere, &restore));
    assert_eq!(fingerprint(&out.join("data")), fingerprint(&data));
    let s = ["--json", "fleet", "status", "--remote", bucket.as_str()];
    let s: serde_json::Value =
        serde_json::from_slice(&ok_out(snap_env(&env, &nowhere, &s))).unwrap();
    assert_eq!(s["hosts"][0]["paths"][0]["id"], last.as_str(), "{s}");
}

// The operator's scheduled prune of a fleet: a gc job on a fleet remote
// prunes every host's prefix by the remote's policy.
#[test]
fn an_operators_gc_job_prunes_every_host_of_the_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let (operator, identity) = sealed_store(&dir.path().join("operator"));
    let bucket = format!("file://{}", dir.path().join("bucket").display());
    for (n, name) in ["a", "b"].iter().enumerate() {
        let store = host_store(dir.path(), name, &operator.join("mirror/recipients"));
        let data = dir.path().join(format!("data-{name}"));
        make_tree(&data, 30 + n as u64, 1);
        for day in 0..3 {
            take_day(&store, &data, day);
            snap_ok(&store, &["mirror", "--remote", &bucket, "--fleet"]);
        }
    }
    let config = dir.path().join("snap.toml");
    let text = format!(
        "store = {:?}\n\n[remotes.fleet]\nurl = {bucket:?}\nfleet = true\nidentity_file = {identity:?}\npolicy = {{ keep_last = 1 }}\n\n[jobs.fleet-prune]\naction = \"gc\"\nremote = \"fleet\"\n",
        operator.display().to_string()
    );
    fs::write(&config, text).unwrap();
    let run = snap(
        &operator,
        &[
            "--config",
            config.to_str().unwrap(),
            "--json",
            "run",
            "fleet-prune",
        ],
    );
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{}{out}", stderr(&run));
    let env = [("SNAP_IDENTITY_FILE", identity.as_str())];
    let nowhere = dir.path().join("no-store");
    let cat = ["--json", "fleet", "list", "--remote", bucket.as_str()];
    let cat: serde_json::Value =
        serde_json::from_slice(&ok_out(snap_env(&env, &nowhere, &cat))).unwrap();
    for host in cat.as_array().unwrap() {
        assert_eq!(host["snapshots"].as_array().unwrap().len(), 1, "{cat}");
        let id = host["store_id"].as_str().unwrap();
        let list = [
            "--json",
            "list",
            "--remote",
            bucket.as_str(),
            "--fleet",
            "--host",
            id,
        ];
        let list: serde_json::Value =
            serde_json::from_slice(&ok_out(snap_env(&env, &nowhere, &list))).unwrap();
        assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    }
}
