//! Crash safety of `take`: a real `snap take` process is killed (SIGKILL) at
//! random moments. Afterwards the store must verify clean without `repair
//! index`, and every snapshot that completed must restore bit for bit.

mod common;
use common::*;
use std::collections::HashMap;
use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn killed_take_never_damages_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (src, store) = (dir.path().join("data"), dir.path().join("store"));
    make_tree(&src, 21, 4);
    snap_ok(&store, &["init"]);
    let mut rng = Rng(0x5eed);
    let mut expected = HashMap::new();
    // One uninterrupted run tells how long a take lasts here.
    fs::write(src.join("varying.bin"), rng.bytes(40 << 20)).unwrap();
    let t = Instant::now();
    snap_ok(
        &store,
        &["take", src.to_str().unwrap(), "--tag", "trial-base"],
    );
    let full = t.elapsed();
    expected.insert("trial-base".to_string(), fingerprint(&src));
    let mut completed = 0;
    for trial in 0..20 {
        fs::write(src.join("varying.bin"), rng.bytes(40 << 20)).unwrap();
        let tag = format!("trial-{trial}");
        expected.insert(tag.clone(), fingerprint(&src));
        let mut child = Command::new(snap_bin())
            .args([
                "--store",
                store.to_str().unwrap(),
                "take",
                src.to_str().unwrap(),
                "--tag",
                &tag,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let delay = full.mul_f64((rng.next() % 1000) as f64 / 1000.0 * 1.1);
        std::thread::sleep(delay.min(Duration::from_secs(20)));
        let _ = child.kill();
        if child.wait().unwrap().success() {
            completed += 1;
        }
        // The store verifies after every kill, with the index as the crash left it.
        snap_ok(&store, &["verify"]);
    }
    snap_ok(&store, &["verify", "--read-data"]);
    let list = snap_json(&store, &["list"]);
    let snaps = list.as_array().unwrap();
    assert!(
        snaps.len() > completed,
        "every completed take left a snapshot"
    );
    for s in snaps {
        let tag = s["tags"][0].as_str().unwrap();
        let id = s["id"].as_str().unwrap();
        let to = dir.path().join(format!("out-{id}"));
        snap_ok(&store, &["restore", id, "--to", to.to_str().unwrap()]);
        assert_eq!(
            expected[tag],
            fingerprint(&to.join("data")),
            "snapshot {tag} differs"
        );
        fs::remove_dir_all(&to).unwrap();
    }
    // Nothing half-written is left where a reader would take it for a pack.
    for p in fs::read_dir(store.join("packs")).unwrap() {
        for f in fs::read_dir(p.unwrap().path()).unwrap() {
            let f = f.unwrap().path();
            snap::store::packs::read_header(&f).unwrap();
        }
    }
}
