//! Tree (manifest) format: one directory's entries, encoded with postcard
//! behind a version byte. A tree's encoding is itself chunked and stored as
//! chunks, so an unchanged directory costs nothing to snapshot again and a
//! changed one costs roughly what changed.
//!
//! Invariants checked by `decode_tree`: every name is one safe path component
//! (not empty, `.` or `..`, no `/` or NUL), and names are strictly sorted, so a
//! tree can never place two entries at one path or point outside its parent.

use crate::error::{Error, Result};
pub use crate::format::units::UnitList;
use crate::id::ChunkId;
use serde::{Deserialize, Serialize};

/// Trees without a listed database are written as version 1, which every
/// snap reads; a tree with one is version 2, which an older snap refuses as
/// an unknown version instead of misreading.
pub(crate) const TREE_VERSION: u8 = 1;
/// A tree that may hold `NodeKind::ListedDatabase` nodes.
pub(crate) const TREE_VERSION_LISTED: u8 = 2;
/// Deepest directory nesting `take` records and `restore` recreates. Far
/// beyond real trees (and PATH_MAX), and it keeps their recursion bounded;
/// the read-side walks are iterative and take any depth.
pub(crate) const MAX_DEPTH: usize = 1024;

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
    /// A SQLite database captured as a consistent image (see `source::sqlite`),
    /// its unit ids inline in `chunks` (written by snap before store format 3).
    Database(Box<Database>),
    /// The same, with `chunks` naming the chunks of its unit list
    /// (`format::units`): what `take` writes now, so that no tree holds a
    /// large database's whole list.
    ListedDatabase(Box<Database>),
}

/// A database image: pages in order, stored as page-aligned chunks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Database {
    pub page_size: u32,
    pub page_count: u64,
    /// The units of the image in order, each whole pages (`Database`), or
    /// the chunks of their list (`ListedDatabase`): read it through
    /// `NodeKind::database`, which says which.
    pub chunks: Vec<ChunkId>,
    pub journal_mode: String,
    pub sqlite_version: String,
    /// "ok", or the first lines `quick_check`/`integrity_check` returned.
    pub check: String,
    pub check_kind: String,
    pub tables: Vec<(String, u64)>,
}

impl NodeKind {
    /// A database node's image and how it names its units.
    pub fn database(&self) -> Option<(&Database, UnitList<'_>)> {
        match self {
            NodeKind::Database(db) => Some((db, UnitList::Inline(&db.chunks))),
            NodeKind::ListedDatabase(db) => Some((db, UnitList::Listed(&db.chunks))),
            _ => None,
        }
    }
}

impl Node {
    pub(crate) fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

pub fn encode_tree(tree: &Tree) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_size_hint(tree));
    let listed = tree
        .nodes
        .iter()
        .any(|n| matches!(n.kind, NodeKind::ListedDatabase(_)));
    out.push(if listed {
        TREE_VERSION_LISTED
    } else {
        TREE_VERSION
    });
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
            NodeKind::Database(db) | NodeKind::ListedDatabase(db) => {
                db.chunks.len() + 4 * db.tables.len()
            }
            NodeKind::Symlink { target } => target.len() / 32 + 1,
        };
        128 + n.name.len() + 33 * list
    };
    16 + tree.nodes.iter().map(node).sum::<usize>()
}

pub(crate) fn decode_tree(bytes: &[u8]) -> Result<Tree> {
    let (version, body) = bytes
        .split_first()
        .ok_or_else(|| Error::corrupt("tree", "empty"))?;
    if *version != TREE_VERSION && *version != TREE_VERSION_LISTED {
        return Err(Error::corrupt(
            "tree",
            format!("unknown version {version} (a newer snap may have written it)"),
        ));
    }
    let (mut tree, rest): (Tree, _) =
        postcard::take_from_bytes(body).map_err(|e| Error::corrupt("tree", e.to_string()))?;
    // A large database's or file's list grew by doubling while it was
    // decoded: up to half of it is slack a take would carry to its end.
    for n in &mut tree.nodes {
        match &mut n.kind {
            NodeKind::Database(db) | NodeKind::ListedDatabase(db) => db.chunks.shrink_to_fit(),
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
        if *version == TREE_VERSION && matches!(n.kind, NodeKind::ListedDatabase(_)) {
            return Err(Error::corrupt(
                "tree",
                "a listed database in a version-1 tree",
            ));
        }
    }
    Ok(tree)
}

/// A name is safe when it is exactly one path component.
pub(crate) fn check_name(name: &[u8]) -> Result<()> {
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

    fn database(listed: bool) -> NodeKind {
        let db = Box::new(Database {
            page_size: 4096,
            page_count: 3,
            chunks: vec![ChunkId::of(b"list")],
            journal_mode: "wal".into(),
            sqlite_version: "3".into(),
            check: "ok".into(),
            check_kind: "quick_check".into(),
            tables: vec![("t".into(), 2)],
        });
        if listed {
            NodeKind::ListedDatabase(db)
        } else {
            NodeKind::Database(db)
        }
    }

    // A tree with a listed database is version 2 (an older snap refuses it
    // by its version); one without stays version 1, which every snap reads.
    // A version-1 tree never holds a listed database.
    #[test]
    fn only_a_tree_with_a_listed_database_is_version_2() {
        let old = Tree {
            nodes: vec![node(b"a.db", database(false))],
        };
        let new = Tree {
            nodes: vec![node(b"a.db", database(true))],
        };
        assert_eq!(encode_tree(&old)[0], TREE_VERSION);
        let bytes = encode_tree(&new);
        assert_eq!(bytes[0], TREE_VERSION_LISTED);
        assert_eq!(decode_tree(&bytes).unwrap(), new);
        assert_eq!(decode_tree(&encode_tree(&old)).unwrap(), old);
        let mut forged = bytes.clone();
        forged[0] = TREE_VERSION;
        assert!(decode_tree(&forged).is_err());
        let (_, list) = new.nodes[0].kind.database().unwrap();
        assert_eq!(list, UnitList::Listed(&[ChunkId::of(b"list")]));
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
