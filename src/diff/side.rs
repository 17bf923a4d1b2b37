//! One side of a diff: a snapshot's tree, or the live paths a snapshot was
//! taken from, flattened to path -> entry. A file's key is the hash of its
//! chunk ids, computed the same way on both sides, so equal content means
//! equal keys without reading a snapshot's data.

use super::rows::{diff_pair, DbDiff};
use crate::error::{Error, Result};
use crate::format::record::Snapshot;
use crate::format::tree::{NodeKind, UnitList};
use crate::id::ChunkId;
use crate::source::walk::{self, Dir, Visit};
use crate::store::{ChunkerParams, StoreReader};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Link,
    Db,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Link => "link",
            Kind::Db => "db",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub kind: Kind,
    pub size: u64,
    /// Content key (None: a live database, compared by its rows).
    pub key: Option<ChunkId>,
    /// Where a database's pages are: its chunks, or its live file.
    pub db: Option<Db>,
}

#[derive(Clone, Debug)]
pub enum Db {
    /// A snapshot's image: the chunks its node names, list chunks if listed.
    Chunks {
        listed: bool,
        chunks: Vec<ChunkId>,
    },
    Live(PathBuf),
}

fn under(path: &str, sub: Option<&str>) -> bool {
    match sub.map(|s| s.trim_matches('/')) {
        None | Some("") => true,
        Some(s) => {
            path == s || path.starts_with(&format!("{s}/")) || s.starts_with(&format!("{path}/"))
        }
    }
}

pub(crate) fn from_snapshot(
    reader: &StoreReader,
    snap: &Snapshot,
    sub: Option<&str>,
) -> Result<BTreeMap<String, Entry>> {
    let mut out = BTreeMap::new();
    let top = reader.tree(&snap.tree)?.nodes;
    reader.walk(
        "",
        top,
        |path, node| {
            if !under(path, sub) {
                return Ok(false);
            }
            let (kind, key, db) = match &node.kind {
                NodeKind::File { chunks } => (Kind::File, Some(ChunkId::of_list(chunks)), None),
                NodeKind::Dir { .. } => (Kind::Dir, None, None),
                NodeKind::Symlink { target } => (Kind::Link, Some(ChunkId::of(target)), None),
                NodeKind::Database(d) | NodeKind::ListedDatabase(d) => (
                    Kind::Db,
                    Some(ChunkId::of_list(&d.chunks)),
                    Some(Db::Chunks {
                        listed: matches!(node.kind, NodeKind::ListedDatabase(_)),
                        chunks: d.chunks.clone(),
                    }),
                ),
            };
            let size = match node.kind.database() {
                Some((d, _)) => d.page_count * d.page_size as u64,
                None => node.size,
            };
            out.insert(
                path.to_string(),
                Entry {
                    kind,
                    size,
                    key,
                    db,
                },
            );
            Ok(true)
        },
        |_, e| Err(e),
    )?;
    Ok(out)
}

/// The live paths `snap` was taken from, named as in the snapshot, walked
/// as `take` walks them (`source::walk`, with the snapshot's excludes).
pub(crate) fn from_live(
    snap: &Snapshot,
    sub: Option<&str>,
    chunker: ChunkerParams,
) -> Result<BTreeMap<String, Entry>> {
    let excludes = crate::source::Excludes::new(&snap.excludes)?;
    let mut live = Live {
        sub,
        chunker,
        out: BTreeMap::new(),
    };
    for p in &snap.paths {
        let root = PathBuf::from(p);
        // A root gone since the snapshot: all of it reads as removed.
        let gone = fs::symlink_metadata(&root);
        if gone.is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
            continue;
        }
        let entry = walk::root(&root)?;
        let parent = Dir::new(root.parent().unwrap_or(Path::new("/")));
        walk::walk(&parent, &entry, "", &excludes, &mut live)?;
    }
    Ok(live.out)
}

struct Live<'a> {
    sub: Option<&'a str>,
    chunker: ChunkerParams,
    out: BTreeMap<String, Entry>,
}

impl Visit for Live<'_> {
    fn leaf(&mut self, e: &walk::Entry, rel: &str) -> Result<()> {
        if !under(rel, self.sub) {
            return Ok(());
        }
        let entry = match e.kind {
            walk::Kind::Symlink => {
                let target = fs::read_link(&e.at).map_err(Error::io("read link", &e.real))?;
                Entry {
                    kind: Kind::Link,
                    size: 0,
                    key: Some(ChunkId::of(target.as_os_str().as_bytes())),
                    db: None,
                }
            }
            walk::Kind::Database => Entry {
                kind: Kind::Db,
                size: e.meta.len(),
                key: None,
                db: Some(Db::Live(e.real.clone())),
            },
            walk::Kind::File => self.file(e)?,
            walk::Kind::Dir | walk::Kind::Other => return Ok(()),
        };
        self.out.insert(rel.to_string(), entry);
        Ok(())
    }

    fn enter(&mut self, _e: &walk::Entry, rel: &str) -> Result<bool> {
        Ok(under(rel, self.sub))
    }

    fn unreadable(&mut self, e: &walk::Entry, err: std::io::Error) -> Result<()> {
        Err(Error::io("read directory", &e.real)(err))
    }

    fn leave(&mut self, _e: &walk::Entry, rel: &str) -> Result<()> {
        let entry = Entry {
            kind: Kind::Dir,
            size: 0,
            key: None,
            db: None,
        };
        self.out.insert(rel.to_string(), entry);
        Ok(())
    }

    fn note(&mut self, _note: String) {}
}

impl Live<'_> {
    /// A live file's entry: its key is the hash of the chunk ids take
    /// would store it as.
    fn file(&self, e: &walk::Entry) -> Result<Entry> {
        let file = fs::File::open(&e.at).map_err(Error::io("open", &e.real))?;
        let mut ids = Vec::new();
        let take = std::io::Read::take(file, e.meta.len());
        for chunk in crate::chunker::file_chunks(take, self.chunker) {
            ids.push(ChunkId::of(&chunk.map_err(Error::io("read", &e.real))?));
        }
        Ok(Entry {
            kind: Kind::File,
            size: e.meta.len(),
            key: Some(ChunkId::of_list(&ids)),
            db: None,
        })
    }
}

/// A database of one side as a file SQLite can open: a snapshot's image
/// written to a private temporary file, or the live file itself.
pub(crate) enum DbFile {
    Image(tempfile::NamedTempFile),
    Live(PathBuf),
}

impl DbFile {
    pub fn path(&self) -> &Path {
        match self {
            DbFile::Image(t) => t.path(),
            DbFile::Live(p) => p,
        }
    }

    pub(crate) fn is_image(&self) -> bool {
        matches!(self, DbFile::Image(_))
    }
}

/// Writes a snapshot database's image to a private temporary file.
pub fn image(reader: &StoreReader, list: UnitList) -> Result<tempfile::NamedTempFile> {
    let tmp = tempfile::NamedTempFile::new().map_err(Error::io("create temporary file", "/tmp"))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file());
    reader.copy_chunks(
        reader.units(list),
        &mut out,
        &crate::progress::Reporter::none(),
    )?;
    std::io::Write::flush(&mut out).map_err(Error::io("write", tmp.path()))?;
    drop(out);
    Ok(tmp)
}

fn open(reader: &StoreReader, e: &Entry) -> Result<DbFile> {
    match &e.db {
        Some(Db::Chunks { listed, chunks }) => {
            image(reader, UnitList::new(*listed, chunks)).map(DbFile::Image)
        }
        Some(Db::Live(p)) => Ok(DbFile::Live(p.clone())),
        None => Err(Error::Invalid("not a database".into())),
    }
}

pub(crate) fn diff_databases(
    reader: &StoreReader,
    path: &str,
    a: &Entry,
    b: &Entry,
    sql: bool,
) -> Result<DbDiff> {
    let (fa, fb) = (open(reader, a)?, open(reader, b)?);
    let conn = super::rows::open_pair(fa.path(), fa.is_image(), fb.path(), fb.is_image())?;
    diff_pair(&conn, path, sql).map_err(Error::sqlite(fa.path()))
}
