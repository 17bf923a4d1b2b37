//! Store format 3: a database's unit list is stored as chunks of its own, so
//! no tree and no take holds a large database's whole list. With one page a
//! unit (the unit-size override every test here sets alike) a 6.5 MB
//! database has three list chunks, as a 64 MiB one has at 64 KiB units.
//! The real binary takes, restores, verifies and collects; the library
//! writes what an older snap wrote (ids inline, store format 2).

mod common;
use common::*;
use rusqlite::Connection;
use snap::format::tree::{encode_tree, NodeKind, Tree};
use snap::Store;
use std::fs;
use std::path::Path;
use std::time::Duration;

const ROWS: i64 = 6_000;

/// A scratch directory with the database (one page a unit, in this process
/// and the snap processes it starts) and an empty store: paths of the
/// database, the store and a restore target.
fn setup() -> (tempfile::TempDir, [std::path::PathBuf; 3]) {
    std::env::set_var("SNAP_BENCH_UNIT_BYTES", "4096");
    let dir = tempfile::tempdir().unwrap();
    let paths = ["app.db", "store", "out"].map(|p| dir.path().join(p));
    make_db(&paths[0]);
    snap_ok(&paths[1], &["init"]);
    (dir, paths)
}

fn make_db(path: &Path) {
    let c = Connection::open(path).unwrap();
    c.execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
        .unwrap();
    let mut rng = Rng(7);
    let tx = c.unchecked_transaction().unwrap();
    for id in 0..ROWS {
        tx.execute("INSERT INTO t VALUES (?1, ?2)", (id, rng.bytes(1000)))
            .unwrap();
    }
    tx.commit().unwrap();
}

/// A day's churn: `n` rows rewritten, spread over the file.
fn churn(path: &Path, day: u64, n: i64) {
    let c = Connection::open(path).unwrap();
    let mut rng = Rng(100 + day);
    for i in 0..n {
        let id = (i * 7919 + day as i64 * 13) % ROWS;
        c.execute("UPDATE t SET v = ?1 WHERE id = ?2", (rng.bytes(1000), id))
            .unwrap();
    }
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
}

fn take_id(store: &Path, db: &Path) -> String {
    snap_json(store, &["take", db.to_str().unwrap()])["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Restores snapshot `id` and compares the database with `want`, byte for byte.
fn restores_as(store: &Path, id: &str, want: &[u8], out: &Path) {
    let _ = fs::remove_dir_all(out);
    snap_ok(store, &["restore", id, "--to", out.to_str().unwrap()]);
    assert!(
        fs::read(out.join("app.db")).unwrap() == want,
        "snapshot {id}"
    );
}

// A listed database comes back bit for bit, every day's, and gc keeps what
// the kept snapshots' lists name: their list chunks and every unit.
#[test]
fn listed_databases_restore_verify_and_survive_gc() {
    let (_dir, [db, store, out]) = setup();
    let mut days = Vec::new();
    for day in 0..4 {
        if day > 0 {
            churn(&db, day, 60);
        }
        days.push((take_id(&store, &db), fs::read(&db).unwrap()));
    }
    let list = listed_chunks(&store);
    assert_eq!(
        list,
        fs::metadata(&db).unwrap().len().div_ceil(4096 * 512) as usize
    );
    assert!(list >= 3, "{list} list chunks");
    for (id, want) in &days {
        restores_as(&store, id, want, &out);
    }
    snap_ok(&store, &["verify", "--read-data"]);
    snap_ok(
        &store,
        &["gc", "--keep-last", "1", "--repack-threshold", "0"],
    );
    let (id, want) = days.last().unwrap();
    restores_as(&store, id, want, &out);
    snap_ok(&store, &["verify", "--read-data"]);
    snap_ok(&store, &["repair", "index"]);
    restores_as(&store, id, want, &out);
}

/// The list chunks of the newest snapshot's database, which must be listed.
fn listed_chunks(store: &Path) -> usize {
    let store = Store::open(store).unwrap();
    let repo = store
        .repository(snap::store::Access::Read, "test", Duration::from_secs(5))
        .unwrap();
    let reader = repo.new_reader().unwrap();
    let (_, s) = snap::list(&store).unwrap().pop().unwrap();
    let top = reader.tree(&s.tree).unwrap();
    match &top.nodes[0].kind {
        NodeKind::ListedDatabase(db) => db.chunks.len(),
        other => panic!("not a listed database: {other:?}"),
    }
}

// A damaged list chunk is named, never read as units: restore and verify
// fail loudly, and gc refuses to run on a mark it could not finish.
#[test]
fn a_damaged_list_chunk_stops_restore_verify_and_gc() {
    let (_dir, [db, store, out]) = setup();
    let id = take_id(&store, &db);
    let list_chunk = {
        let s = Store::open(&store).unwrap();
        let repo = s
            .repository(snap::store::Access::Read, "test", Duration::from_secs(5))
            .unwrap();
        let reader = repo.new_reader().unwrap();
        let top = reader
            .tree(&s.load_snapshot(&s.resolve(&id).unwrap()).unwrap().tree)
            .unwrap();
        let NodeKind::ListedDatabase(d) = &top.nodes[0].kind else {
            panic!("not listed")
        };
        let loc = reader.index.locate(&d.chunks[1]).unwrap();
        let at = loc.entry.offset + loc.entry.length as u64 / 2;
        // The store's layout (DESIGN.md): packs/<2 hex>/<64 hex>.pack.
        let hex = loc.pack.to_hex();
        let path = s
            .root()
            .join("packs")
            .join(&hex[..2])
            .join(format!("{hex}.pack"));
        (path, at, d.chunks[1].to_hex())
    };
    let (pack, at, named) = list_chunk;
    let mut bytes = fs::read(&pack).unwrap();
    bytes[at as usize] ^= 0x40;
    fs::write(&pack, bytes).unwrap();
    let r = snap(&store, &["restore", &id, "--to", out.to_str().unwrap()]);
    assert_ne!(
        r.status.code(),
        Some(0),
        "restore of a damaged list succeeded"
    );
    assert!(!out.join("app.db").exists(), "a partial database appeared");
    let v = snap(&store, &["verify", "--read-data"]);
    assert_ne!(v.status.code(), Some(0), "verify passed a damaged list");
    let said = String::from_utf8_lossy(&v.stdout).to_string() + &String::from_utf8_lossy(&v.stderr);
    assert!(
        said.contains(&named[..12]),
        "verify did not name the chunk: {said}"
    );
    let g = snap(&store, &["gc", "--keep-last", "1"]);
    assert_ne!(g.status.code(), Some(0), "gc ran on a partial mark");
}

// What a snap before store format 3 wrote: the unit ids inline in the tree,
// store format 2. It restores as it is, is the parent of the next take (whose
// units are deltas against it, so the day costs about what changed), and
// its units survive a gc that keeps it beside a listed snapshot.
#[test]
fn an_older_stores_inline_database_is_read_and_is_a_parent() {
    let (_dir, [db, store, out]) = setup();
    take_id(&store, &db);
    let old = inline_like_an_older_snap(&store);
    let day0 = fs::read(&db).unwrap();
    restores_as(&store, &old, &day0, &out);
    churn(&db, 1, 20);
    let taken = snap_json(&store, &["take", db.to_str().unwrap()]);
    let added = taken["stats"]["added"].as_u64().unwrap();
    assert!(
        added < day0.len() as u64 / 5,
        "the day stored {added} bytes"
    );
    let cfg: serde_json::Value =
        serde_json::from_slice(&fs::read(store.join("config")).unwrap()).unwrap();
    assert_eq!(cfg["format"], snap::store::FORMAT_VERSION);
    let new = taken["id"].as_str().unwrap().to_string();
    restores_as(&store, &new, &fs::read(&db).unwrap(), &out);
    snap_ok(
        &store,
        &["gc", "--keep-last", "2", "--repack-threshold", "0"],
    );
    restores_as(&store, &old, &day0, &out);
    snap_ok(&store, &["verify", "--read-data"]);
}

/// Rewrites the store's only snapshot with its database's unit ids inline
/// and marks the store format 2, as an older snap left it; returns its id.
fn inline_like_an_older_snap(root: &Path) -> String {
    let store = Store::open(root).unwrap();
    let repo = store
        .repository(snap::store::Access::Write, "test", Duration::from_secs(5))
        .unwrap();
    let (old_id, mut s) = snap::list(&store).unwrap().pop().unwrap();
    let mut top = repo.new_reader().unwrap().tree(&s.tree).unwrap();
    let NodeKind::ListedDatabase(db) = top.nodes[0].kind.clone() else {
        panic!("not listed")
    };
    let reader = repo.new_reader().unwrap();
    let (_, list) = top.nodes[0].kind.database().unwrap();
    let units = reader
        .units(list)
        .collect::<snap::Result<Vec<_>>>()
        .unwrap();
    top.nodes[0].kind = NodeKind::Database(Box::new(snap::format::tree::Database {
        chunks: units,
        ..*db
    }));
    let bytes = encode_tree(&Tree { nodes: top.nodes });
    assert_eq!(bytes[0], 1, "an older snap's tree version");
    let mut w = snap::dedup::ChunkWriter::new(&repo).unwrap();
    s.tree = w.put_buffer(&bytes).unwrap();
    w.finish().unwrap();
    let id = store.write_snapshot(&s).unwrap();
    fs::remove_file(root.join("snapshots").join(format!("{old_id}.json"))).unwrap();
    let path = root.join("config");
    let mut c: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    c["format"] = 2.into();
    fs::write(&path, serde_json::to_vec(&c).unwrap()).unwrap();
    id.to_hex()
}
