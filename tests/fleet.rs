//! Many stores, one bucket: two stores that mirror into one prefix keep
//! each other's packs through remote gc; hosts mirror into a fleet bucket
//! with catalogs, and the operator sees, lists, restores and prunes them
//! from the bucket alone.

mod common;
use common::*;
use std::fs;
use std::path::Path;

fn take(store: &Path, data: &Path, day: u32) -> String {
    fs::write(data.join("day.txt"), format!("day {day}")).unwrap();
    snap_json(store, &["take", data.to_str().unwrap()])["id"]
        .as_str()
        .unwrap()
        .to_string()
}

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
    take(&a, &data_a, 0);
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
    take(&b, &data_b, 1);
    fs::remove_file(data_b.join("own.bin")).unwrap();
    take(&b, &data_b, 2);
    snap_ok(&b, &["mirror", "--remote", &url, "--plaintext"]);
    // A mirrors last: its hold is the newest, and names none of B's packs.
    take(&a, &data_a, 3);
    snap_ok(&a, &["mirror", "--remote", &url, "--plaintext"]);
    let operator = dir.path().join("operator");
    snap_ok(&operator, &["gc", "--remote", &url, "--keep-last", "1"]);
    // B still holds its first snapshot's packs, so its third names them again.
    fs::write(data_b.join("own.bin"), &own).unwrap();
    let third = take(&b, &data_b, 4);
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
