//! Replays the fuzz corpora (`fuzz/corpus/<target>/*`) as ordinary tests, so
//! CI keeps every input the fuzzers found interesting, and every crash they
//! once found, honest.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        run(&data);
        n += 1;
    }
    assert!(n > 0, "empty corpus {}", dir.display());
}

#[test]
fn pack_corpus() {
    replay("pack_decode", snap::format::fuzzing::pack);
}

#[test]
fn tree_corpus() {
    replay("tree_decode", snap::format::fuzzing::tree);
}

#[test]
fn index_rebuild_corpus() {
    replay("index_rebuild", snap::format::fuzzing::index_rebuild);
}

/// Writes the seed inputs (run once with `--ignored`; the files are committed).
#[test]
#[ignore]
fn write_seeds() {
    use snap::format::entry::encode_entry;
    use snap::format::pack::{encode_header, PackEntry};
    use snap::format::tree::{encode_tree, Node, NodeKind, Tree};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let chunks: Vec<Vec<u8>> = vec![b"hello".to_vec(), vec![0u8; 3000], (0..255u8).collect()];
    for n in 0..=chunks.len() {
        let mut data = Vec::new();
        let mut entries = Vec::new();
        for c in &chunks[..n] {
            let (kind, stored) = encode_entry(c, 3);
            entries.push(PackEntry {
                kind,
                id: snap::ChunkId::of(c),
                offset: data.len() as u64,
                length: stored.len() as u32,
                raw_length: c.len() as u32,
            });
            data.extend(stored);
        }
        data.extend(encode_header(&entries));
        for t in ["pack_decode", "index_rebuild"] {
            std::fs::write(root.join(t).join(format!("seed-{n}")), &data).unwrap();
        }
    }
    let node = |name: &str, kind| Node {
        name: name.into(),
        kind,
        mode: 0o644,
        uid: 1,
        gid: 1,
        mtime: 1,
        ctime: 2,
        inode: 3,
        dev: 4,
        size: 5,
    };
    let trees = [
        Tree::default(),
        Tree {
            nodes: vec![
                node(
                    "a",
                    NodeKind::File {
                        chunks: vec![snap::ChunkId::of(b"x")],
                    },
                ),
                node(
                    "b",
                    NodeKind::Symlink {
                        target: b"a".to_vec(),
                    },
                ),
            ],
        },
        Tree {
            nodes: vec![node(
                "d",
                NodeKind::Dir {
                    tree: vec![snap::ChunkId::of(b"y"); 2],
                },
            )],
        },
    ];
    for (i, t) in trees.iter().enumerate() {
        std::fs::write(
            root.join("tree_decode").join(format!("seed-{i}")),
            encode_tree(t),
        )
        .unwrap();
    }
}
