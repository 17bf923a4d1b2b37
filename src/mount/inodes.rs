//! The inode table of a mount: the synthetic top (`names`), then each
//! snapshot's trees, read from the store the first time a directory is
//! looked into. Inode numbers are indexes into the table (plus one), never
//! reused while mounted, so the kernel's cached numbers stay right.
//!
//! Invariant: a directory's children are added to the table once, under its
//! own lock, so two threads looking into it at once cannot give one name two
//! inodes.

use super::names::{self, Leaf};
use crate::error::Result;
use crate::format::record::Snapshot;
use crate::format::tree::{Node, NodeKind};
use crate::id::{ChunkId, SnapshotId};
use crate::store::StoreReader;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// The root directory's inode number (FUSE's).
pub(crate) const ROOT: u64 = 1;

/// What an inode is.
#[derive(Debug)]
pub(crate) enum Body {
    /// A directory whose children are known (the synthetic top).
    Fixed,
    /// A directory stored as a tree (its chunks; a snapshot's top tree).
    Tree(Vec<ChunkId>),
    /// A file or database image: its node's content.
    Content(NodeKind),
    /// A symlink and its target.
    Link(Vec<u8>),
}

/// Attributes, as the kernel is told them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Meta {
    pub dir: bool,
    pub link: bool,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Nanoseconds since the Unix epoch.
    pub mtime: i64,
    pub ctime: i64,
}

#[derive(Debug)]
pub(crate) struct Inode {
    pub parent: u64,
    pub meta: Meta,
    pub body: Body,
    /// Children by name (sorted), once known.
    children: Mutex<Option<Children>>,
}

/// A directory's children: (name, inode number), sorted by name.
pub(crate) type Children = Arc<Vec<(Vec<u8>, u64)>>;

/// Every inode handed out so far.
pub(crate) struct Table {
    inodes: RwLock<Vec<Arc<Inode>>>,
}

impl Table {
    /// The top of a mount of `snaps`, taken at `now` (ns).
    pub fn new(snaps: &[(SnapshotId, Snapshot)], now: i64) -> Table {
        let table = Table {
            inodes: RwLock::new(Vec::new()),
        };
        let dir = |time| Meta {
            dir: true,
            link: false,
            mode: 0o555,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: time,
            ctime: time,
        };
        table.push(ROOT, dir(now), Body::Fixed);
        // Synthetic directories by (parent, name), and each one's children.
        let mut dirs: HashMap<(u64, String), u64> = HashMap::new();
        let mut kids: HashMap<u64, Vec<(Vec<u8>, u64)>> = HashMap::new();
        let mut fixed_dir = |parent: u64, name: &str, kids: &mut HashMap<_, Vec<_>>| {
            *dirs.entry((parent, name.to_string())).or_insert_with(|| {
                let ino = table.push(parent, dir(now), Body::Fixed);
                kids.entry(parent)
                    .or_default()
                    .push((name.as_bytes().to_vec(), ino));
                ino
            })
        };
        let (tops, leaves) = names::layout(snaps);
        for top in tops {
            fixed_dir(ROOT, top, &mut kids);
        }
        for (path, leaf) in leaves {
            let mut at = ROOT;
            for part in &path[..path.len() - 1] {
                at = fixed_dir(at, part, &mut kids);
            }
            let name = path.last().expect("a leaf has a name").as_bytes().to_vec();
            let (meta, body) = match leaf {
                Leaf::Snapshot(i) => {
                    let s = &snaps[i].1;
                    let t = s.time.timestamp_nanos_opt().unwrap_or(0);
                    (dir(t), Body::Tree(s.tree.clone()))
                }
                Leaf::Link(target) => {
                    let meta = Meta {
                        link: true,
                        dir: false,
                        mode: 0o777,
                        size: target.len() as u64,
                        ..dir(now)
                    };
                    (meta, Body::Link(target.into_bytes()))
                }
            };
            let ino = table.push(at, meta, body);
            kids.entry(at).or_default().push((name, ino));
        }
        for (ino, mut list) in kids {
            list.sort();
            let inode = table.get(ino).expect("a synthetic directory");
            *inode.children.lock().expect("children") = Some(Arc::new(list));
        }
        // Synthetic directories with nothing in them are known to be empty.
        for ino in 1..=table.len() {
            let inode = table.get(ino).expect("an inode");
            if matches!(inode.body, Body::Fixed) {
                inode
                    .children
                    .lock()
                    .expect("children")
                    .get_or_insert_with(Default::default);
            }
        }
        table
    }

    pub fn get(&self, ino: u64) -> Option<Arc<Inode>> {
        let i = usize::try_from(ino.checked_sub(1)?).ok()?;
        self.inodes.read().expect("inode table").get(i).cloned()
    }

    /// The children of directory `ino`, reading its tree the first time.
    pub fn children(&self, ino: u64, reader: &StoreReader) -> Result<Children> {
        let inode = self.get(ino).expect("a known inode");
        let mut known = inode.children.lock().expect("children");
        if let Some(c) = known.as_ref() {
            return Ok(c.clone());
        }
        let list = match &inode.body {
            Body::Tree(ids) => reader
                .tree(ids)?
                .nodes
                .into_iter()
                .map(|node| {
                    let name = node.name.clone();
                    let (meta, body) = from_node(node);
                    (name, self.push(ino, meta, body))
                })
                .collect(),
            _ => Vec::new(),
        };
        let list = Arc::new(list);
        *known = Some(list.clone());
        Ok(list)
    }

    fn push(&self, parent: u64, meta: Meta, body: Body) -> u64 {
        let mut all = self.inodes.write().expect("inode table");
        all.push(Arc::new(Inode {
            parent,
            meta,
            body,
            children: Mutex::new(None),
        }));
        all.len() as u64
    }

    fn len(&self) -> u64 {
        self.inodes.read().expect("inode table").len() as u64
    }
}

impl Inode {
    /// Whether this inode is a directory.
    pub fn is_dir(&self) -> bool {
        self.meta.dir
    }
}

fn from_node(node: Node) -> (Meta, Body) {
    let mut meta = Meta {
        dir: false,
        link: false,
        mode: node.mode & 0o7777,
        uid: node.uid,
        gid: node.gid,
        size: node.size,
        mtime: node.mtime,
        ctime: node.ctime,
    };
    let body = match node.kind {
        NodeKind::Dir { tree } => {
            meta.dir = true;
            Body::Tree(tree)
        }
        NodeKind::Symlink { target } => {
            meta.link = true;
            meta.size = target.len() as u64;
            Body::Link(target)
        }
        kind => Body::Content(kind),
    };
    (meta, body)
}
