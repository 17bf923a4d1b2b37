//! Library-level properties of the store: generated trees round-trip,
//! deduplication of a one-byte change, manifests that try to escape.

mod common;
use common::*;
use proptest::prelude::*;
use snap::format::tree::{encode_tree, Node, NodeKind, Tree};
use snap::{RestoreOptions, Store, StoreConfig, TakeOptions};
use std::fs;
use std::path::Path;

fn take(store: &Store, path: &Path) -> snap::TakeReport {
    snap::take(
        store,
        &TakeOptions {
            paths: vec![path.to_path_buf()],
            ..Default::default()
        },
    )
    .unwrap()
}

fn restore_to(store: &Store, to: &Path) -> snap::Result<snap::RestoreReport> {
    snap::restore(
        store,
        &RestoreOptions {
            snapshot: "latest".into(),
            to: Some(to.to_path_buf()),
            ..Default::default()
        },
    )
}

#[derive(Debug, Clone)]
enum Gen {
    File(Vec<u8>),
    Big(u64, usize),
    Dir(Vec<(String, Gen)>),
}

fn gen_tree() -> impl Strategy<Value = Gen> {
    let name = "[a-zA-Z0-9 _.\\-ä日\n]{1,12}".prop_filter("component", |s| s != "." && s != "..");
    let leaf = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2000).prop_map(Gen::File),
        (any::<u64>(), 0usize..3_000_000).prop_map(|(s, n)| Gen::Big(s, n)),
    ];
    leaf.prop_recursive(6, 40, 6, move |inner| {
        prop::collection::btree_map(name.clone(), inner, 0..6)
            .prop_map(|m| Gen::Dir(m.into_iter().collect()))
    })
}

fn write_gen(path: &Path, g: &Gen) {
    match g {
        Gen::File(b) => fs::write(path, b).unwrap(),
        Gen::Big(seed, n) => fs::write(path, Rng(seed | 1).bytes(*n)).unwrap(),
        Gen::Dir(children) => {
            fs::create_dir(path).unwrap();
            for (n, c) in children {
                write_gen(&path.join(n), c);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn generated_trees_round_trip(g in gen_tree()) {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("root");
        match &g {
            Gen::Dir(_) => write_gen(&src, &g),
            _ => write_gen(&src, &Gen::Dir(vec![("only".into(), g.clone())])),
        }
        let store = Store::init(dir.path().join("store"), StoreConfig::default()).unwrap();
        take(&store, &src);
        let out = dir.path().join("out");
        restore_to(&store, &out).unwrap();
        prop_assert_eq!(fingerprint(&src), fingerprint(&out.join("root")));
    }
}

#[test]
fn one_byte_change_in_100_mib_stores_under_1_mib() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("data");
    fs::create_dir(&src).unwrap();
    let mut data = Rng(42).bytes(100 << 20);
    fs::write(src.join("big.bin"), &data).unwrap();
    let store = Store::init(dir.path().join("store"), StoreConfig::default()).unwrap();
    let first = take(&store, &src);
    assert!(first.snapshot.unwrap().stats.added > 100 << 20);
    data[60 << 20] ^= 0xff;
    fs::write(src.join("big.bin"), &data).unwrap();
    let second = take(&store, &src).snapshot.unwrap();
    eprintln!("one-byte change stored {} bytes", second.stats.added);
    assert!(
        second.stats.added < 1 << 20,
        "stored {} bytes",
        second.stats.added
    );
    let out = dir.path().join("out");
    restore_to(&store, &out).unwrap();
    assert_eq!(fs::read(out.join("data/big.bin")).unwrap(), data);
}

/// Writes a snapshot whose top tree holds `node`, bypassing `take`: what an
/// attacker or a bug could leave in a store.
fn forge(store: &Store, nodes: Vec<Node>) {
    let repo = store
        .repository(
            snap::store::Access::Write,
            "test",
            std::time::Duration::from_secs(5),
        )
        .unwrap();
    let mut w = snap::dedup::ChunkWriter::new(&repo).unwrap();
    let mut top = Tree { nodes };
    top.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let tree = w.put_buffer(&encode_tree(&top)).unwrap();
    w.finish().unwrap();
    let mut s: snap::Snapshot = serde_json::from_value(serde_json::json!({
        "version": 1, "time": "2026-01-01T00:00:00Z", "host": "h", "paths": ["/x"],
        "tree": [], "stats": snap::format::record::TakeStats::default(),
    }))
    .unwrap();
    s.tree = tree;
    store.write_snapshot(&s).unwrap();
}

fn node(name: &[u8], kind: NodeKind) -> Node {
    Node {
        name: name.to_vec(),
        kind,
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: 0,
        ctime: 0,
        inode: 0,
        dev: 0,
        size: 0,
    }
}

#[test]
fn manifests_that_escape_the_target_are_refused() {
    for bad in [&b".."[..], b"/etc", b"a/../../x", b"."] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(dir.path().join("store"), StoreConfig::default()).unwrap();
        forge(
            &store,
            vec![node(
                bad,
                NodeKind::Symlink {
                    target: b"/".to_vec(),
                },
            )],
        );
        let out = dir.path().join("out");
        let err = restore_to(&store, &out).unwrap_err();
        assert!(matches!(err, snap::Error::Corrupt { .. }), "{bad:?}: {err}");
        assert!(fs::read_dir(dir.path())
            .unwrap()
            .all(|e| e.unwrap().file_name() != "x"));
    }
}

// Format 2 (delta chains): a format-1 store is read as it is and becomes
// format 2 before its first take writes; a store from a newer snap is
// refused with a clear message.
#[test]
fn a_format_1_store_is_read_and_marked_format_2_by_its_next_take() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, src) = (tmp.path().join("store"), tmp.path().join("src"));
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), b"one").unwrap();
    take(&Store::init(&root, StoreConfig::default()).unwrap(), &src);
    let set_format = |n: u32| {
        let path = root.join("config");
        let mut c: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        c["format"] = n.into();
        fs::write(&path, serde_json::to_vec(&c).unwrap()).unwrap();
    };
    set_format(1);
    let store = Store::open(&root).unwrap();
    restore_to(&store, &tmp.path().join("r1")).unwrap();
    assert_eq!(fs::read(tmp.path().join("r1/src/a")).unwrap(), b"one");
    fs::write(src.join("a"), b"two").unwrap();
    take(&store, &src);
    let store = Store::open(&root).unwrap();
    assert_eq!(store.config().format, snap::store::FORMAT_VERSION);
    restore_to(&store, &tmp.path().join("r2")).unwrap();
    assert_eq!(fs::read(tmp.path().join("r2/src/a")).unwrap(), b"two");
    set_format(snap::store::FORMAT_VERSION + 1);
    let err = Store::open(&root).unwrap_err().to_string();
    assert!(err.contains("is not supported by this snap"), "{err}");
}
