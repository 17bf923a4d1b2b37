//! Tree (manifest) format: one directory's entries, encoded with postcard
//! behind a version byte. A tree's encoding is itself chunked and stored as
//! chunks, so an unchanged directory costs nothing to snapshot again and a
//! changed one costs roughly what changed.
//!
//! Invariants checked by `decode_tree`: every name is one safe path component
//! (not empty, `.` or `..`, no `/` or NUL), and names are strictly sorted, so a
//! tree can never place two entries at one path or point outside its parent.

use crate::error::{Error, Result};
use crate::id::ChunkId;
use serde::{Deserialize, Serialize};

pub const TREE_VERSION: u8 = 1;
/// Deepest directory nesting `take` records and `restore` recreates. Far
/// beyond real trees (and PATH_MAX), and it keeps their recursion bounded;
/// the read-side walks are iterative and take any depth.
pub const MAX_DEPTH: usize = 1024;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

/// One directory entry with the metadata restore needs and the fields
/// (`ctime`, `inode`, `dev`) that let the next `take` skip unchanged files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: Vec<u8>,
    pub kind: NodeKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Nanoseconds since the Unix epoch.
    pub mtime: i64,
    pub ctime: i64,
    pub inode: u64,
    pub dev: u64,
    /// Plain content length (files and database images).
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    /// An ordinary file: its content is the concatenation of these chunks.
    File {
        chunks: Vec<ChunkId>,
    },
    /// A directory: its `Tree` encoding is the concatenation of these chunks.
    Dir {
        tree: Vec<ChunkId>,
    },
    Symlink {
        target: Vec<u8>,
    },
    /// A SQLite database captured as a consistent image (see `source::sqlite`).
    Database(Box<Database>),
}

/// A database image: pages in order, stored as page-aligned chunks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Database {
    pub page_size: u32,
    pub page_count: u64,
    /// Chunks of the image in order; each holds whole pages.
    pub chunks: Vec<ChunkId>,
    pub journal_mode: String,
    pub sqlite_version: String,
    /// "ok", or the first lines `quick_check`/`integrity_check` returned.
    pub check: String,
    pub check_kind: String,
    pub tables: Vec<(String, u64)>,
}

impl Node {
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

pub fn encode_tree(tree: &Tree) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_size_hint(tree));
    out.push(TREE_VERSION);
    // Serialising plain data into a Vec cannot fail.
    postcard::to_extend(tree, out).expect("tree encodes")
}

/// About the encoded size (a little more): a 10 GiB database's list is
/// 5 MB, which a growing buffer would hold twice over.
fn encoded_size_hint(tree: &Tree) -> usize {
    let node = |n: &Node| {
        let list = match &n.kind {
            NodeKind::File { chunks } => chunks.len(),
            NodeKind::Dir { tree } => tree.len(),
            NodeKind::Database(db) => db.chunks.len() + 4 * db.tables.len(),
            NodeKind::Symlink { target } => target.len() / 32 + 1,
        };
        128 + n.name.len() + 33 * list
    };
    16 + tree.nodes.iter().map(node).sum::<usize>()
}

pub fn decode_tree(bytes: &[u8]) -> Result<Tree> {
    let (version, body) = bytes
        .split_first()
        .ok_or_else(|| Error::corrupt("tree", "empty"))?;
    if *version != TREE_VERSION {
        return Err(Error::corrupt("tree", format!("unknown version {version}")));
    }
    let (mut tree, rest): (Tree, _) =
        postcard::take_from_bytes(body).map_err(|e| Error::corrupt("tree", e.to_string()))?;
    // A large database's or file's list grew by doubling while it was
    // decoded: up to half of it is slack a take would carry to its end.
    for n in &mut tree.nodes {
        match &mut n.kind {
            NodeKind::Database(db) => db.chunks.shrink_to_fit(),
            NodeKind::File { chunks } => chunks.shrink_to_fit(),
            _ => {}
        }
    }
    if !rest.is_empty() {
        return Err(Error::corrupt("tree", "trailing bytes"));
    }
    for w in tree.nodes.windows(2) {
        if w[0].name >= w[1].name {
            return Err(Error::corrupt("tree", "names not strictly sorted"));
        }
    }
    for n in &tree.nodes {
        check_name(&n.name)?;
    }
    Ok(tree)
}

/// A name is safe when it is exactly one path component.
pub fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(Error::corrupt(
            "tree",
            format!("unsafe name {:?}", String::from_utf8_lossy(name)),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(name: &[u8], kind: NodeKind) -> Node {
        Node {
            name: name.to_vec(),
            kind,
            mode: 0o644,
            uid: 1,
            gid: 2,
            mtime: -5,
            ctime: 7,
            inode: 9,
            dev: 1,
            size: 3,
        }
    }

    proptest! {
        #[test]
        fn round_trip(names in prop::collection::btree_set("[a-zA-Z0-9 ._-]{1,20}", 0..30), n in 0usize..5) {
            let nodes = names.into_iter().filter(|s| s != "." && s != "..").map(|s| {
                node(s.as_bytes(), NodeKind::File { chunks: vec![ChunkId::of(s.as_bytes()); n] })
            }).collect();
            let tree = Tree { nodes };
            prop_assert_eq!(decode_tree(&encode_tree(&tree)).unwrap(), tree);
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_tree(&bytes);
        }
    }

    #[test]
    fn traversal_names_are_refused() {
        for bad in [&b".."[..], b".", b"", b"a/b", b"/etc", b"x\0"] {
            let t = Tree {
                nodes: vec![node(
                    bad,
                    NodeKind::Symlink {
                        target: b"/".to_vec(),
                    },
                )],
            };
            assert!(decode_tree(&encode_tree(&t)).is_err(), "{bad:?}");
        }
        let dup = Tree {
            nodes: vec![
                node(b"a", NodeKind::Dir { tree: vec![] }),
                node(
                    b"a",
                    NodeKind::Symlink {
                        target: b"/".to_vec(),
                    },
                ),
            ],
        };
        assert!(decode_tree(&encode_tree(&dup)).is_err());
    }
}
