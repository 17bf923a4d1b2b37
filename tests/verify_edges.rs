//! `verify` checks what `restore` checks and names all of what is damaged;
//! `restore` reads past a damaged index row, since the pack headers answer.

mod common;
use common::*;
use snap::format::tree::{encode_tree, NodeKind};
use std::fs;
use std::path::Path;

fn problems(store: &Path) -> Vec<serde_json::Value> {
    let out = snap(store, &["--json", "verify", "--read-data"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["report"]["problems"].as_array().unwrap().clone()
}

// One flipped byte in a pack shared by snapshots: verify named one
// snapshot and the wrong file, where restore named the right one. Every
// snapshot and file that uses the damaged chunk is named.
#[test]
fn a_damaged_shared_pack_names_every_snapshot_and_file_that_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = (dir.path().join("data"), dir.path().join("store"));
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("shared.bin"), Rng(1).bytes(50_000)).unwrap();
    let mut ids = vec![snap_json(&store, &["take", data.to_str().unwrap()])["id"].clone()];
    let first_pack = fs::read_dir(store.join("packs"))
        .unwrap()
        .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .next()
        .unwrap();
    for i in 0..2 {
        fs::write(data.join(format!("new{i}.bin")), Rng(10 + i).bytes(40_000)).unwrap();
        ids.push(snap_json(&store, &["take", data.to_str().unwrap()])["id"].clone());
    }
    // shared.bin is the first entry of the first pack.
    let mut bytes = fs::read(&first_pack).unwrap();
    bytes[1000] ^= 0x20;
    fs::write(&first_pack, bytes).unwrap();
    let found = problems(&store);
    for id in &ids {
        assert!(
            found
                .iter()
                .any(|p| &p["snapshot"] == id && p["path"] == "data/shared.bin"),
            "{id} is not named: {found:#?}"
        );
    }
    assert!(
        !found
            .iter()
            .any(|p| p["path"].as_str().is_some_and(|p| p.contains("new"))),
        "only the damaged file is named: {found:#?}"
    );
}

/// Rewrites the latest snapshot's first database node with `edit`, as a new
/// snapshot (the store's own writer, so only the record lies).
fn edited_snapshot(store: &Path, edit: impl Fn(&mut snap::format::tree::Database)) {
    let s = snap::Store::open(store).unwrap();
    let (_, latest) = snap::list(&s).unwrap().pop().unwrap();
    let repo = s
        .repository(
            snap::store::Access::Write,
            "test",
            std::time::Duration::ZERO,
        )
        .unwrap();
    let reader = repo.new_reader().unwrap();
    let mut top = reader.tree(&latest.tree).unwrap();
    for n in &mut top.nodes {
        if let NodeKind::Database(d) | NodeKind::ListedDatabase(d) = &mut n.kind {
            edit(d);
        }
    }
    drop(reader);
    let mut w = snap::dedup::ChunkWriter::new(&repo).unwrap();
    let tree = w.put_buffer(&encode_tree(&top)).unwrap();
    w.finish().unwrap();
    let mut record = latest.clone();
    record.tree = tree;
    record.time += chrono::Duration::seconds(1);
    s.write_snapshot(&record).unwrap();
}

// `verify --read-data` passed snapshots that `restore` then refused as
// corrupt: a database node whose page count disagrees with its units, or
// whose unit list is empty.
#[test]
fn verify_refuses_the_database_nodes_restore_refuses() {
    for case in ["page count", "empty list"] {
        let dir = tempfile::tempdir().unwrap();
        let (db, store) = (dir.path().join("app.db"), dir.path().join("store"));
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (randomblob(9000));")
            .unwrap();
        snap_ok(&store, &["take", db.to_str().unwrap()]);
        edited_snapshot(&store, |d| match case {
            "page count" => d.page_count += 1,
            _ => d.chunks.clear(),
        });
        let restore = snap(
            &store,
            &[
                "restore",
                "latest",
                "--to",
                dir.path().join("out").to_str().unwrap(),
            ],
        );
        assert!(!restore.status.success(), "{case}: restore refuses it");
        let found = problems(&store);
        assert!(
            found.iter().any(|p| p["path"] == "app.db"
                && p["detail"].as_str().unwrap().contains("restore refuses it")),
            "{case}: {found:#?}"
        );
    }
}

// A flipped bit in an index row made `restore` fail until `repair index`;
// the pack headers that answer are right there. Restore reads where the
// headers put the chunk and says the index needs a repair; verify still
// names the row.
#[test]
fn restore_reads_past_a_damaged_index_row() {
    for byte in [0, 5, 13] {
        let dir = tempfile::tempdir().unwrap();
        let (data, store) = (dir.path().join("data"), dir.path().join("store"));
        make_tree(&data, 4, 2);
        // One snapshot: every indexed chunk is one it uses.
        snap_ok(&store, &["take", data.to_str().unwrap()]);
        flip_index_row(&store, byte);
        let out = dir.path().join("out");
        let r = snap(
            &store,
            &["restore", "latest", "--to", out.to_str().unwrap()],
        );
        assert!(
            r.status.success(),
            "byte {byte}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert_eq!(
            fingerprint(&out.join("data")),
            fingerprint(&data),
            "byte {byte}"
        );
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(err.contains("snap repair index"), "byte {byte}: {err}");
        assert!(!problems(&store).is_empty());
        snap_ok(&store, &["repair", "index"]);
        snap_ok(&store, &["verify", "--read-data"]);
    }
}
