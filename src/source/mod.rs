//! Sources: what `take` reads. Paths are walked into tree nodes; files whose
//! first bytes are the SQLite magic are captured through SQLite (`sqlite`).

pub mod walk;

use crate::error::{Error, Result};
use crate::format::tree::{Node, NodeKind};
use globset::{Glob, GlobSet, GlobSetBuilder};
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Tree node metadata from a `symlink_metadata` result.
pub fn node(name: Vec<u8>, meta: &Metadata, kind: NodeKind) -> Node {
    Node {
        name,
        kind,
        mode: meta.mode(),
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        ctime: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        inode: meta.ino(),
        dev: meta.dev(),
        size: if meta.is_file() { meta.len() } else { 0 },
    }
}

/// Modification time in nanoseconds since the epoch.
pub(crate) fn mtime_ns(meta: &Metadata) -> i64 {
    meta.mtime() * 1_000_000_000 + meta.mtime_nsec()
}

/// True when `old` describes the same unchanged file as `meta` (restic's rule:
/// size, mtime, ctime and inode all equal), so its chunks can be reused.
pub fn unchanged(old: &Node, meta: &Metadata) -> bool {
    matches!(old.kind, NodeKind::File { .. })
        && old.size == meta.len()
        && old.mtime == meta.mtime() * 1_000_000_000 + meta.mtime_nsec()
        && old.ctime == meta.ctime() * 1_000_000_000 + meta.ctime_nsec()
        && old.inode == meta.ino()
}

/// The bytes `take` will go through under `roots` (file sizes, found by a
/// walk of `stat`s only), for a progress total.
pub fn estimate(roots: &[std::path::PathBuf], excludes: &Excludes) -> u64 {
    let mut total = 0;
    let mut stack: Vec<std::path::PathBuf> = roots.to_vec();
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(
                    rd.flatten()
                        .map(|e| e.path())
                        .filter(|c| !excludes.matches(c)),
                );
            }
        } else if meta.is_file() && sqlite_sibling(&p).is_none() {
            total += meta.len();
        }
    }
    total
}

/// `--exclude` globs, matched against the full path and the base name.
pub struct Excludes(GlobSet);

impl Excludes {
    pub fn new(patterns: &[String]) -> Result<Excludes> {
        Excludes::named("exclude", patterns)
    }

    /// Globs of the option `what` (named in errors), matched the same way.
    pub fn named(what: &str, patterns: &[String]) -> Result<Excludes> {
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            b.add(Glob::new(p).map_err(|e| Error::Invalid(format!("{what} {p:?}: {e}")))?);
        }
        Ok(Excludes(
            b.build().map_err(|e| Error::Invalid(e.to_string()))?,
        ))
    }

    pub fn matches(&self, path: &Path) -> bool {
        self.0.is_match(path) || path.file_name().is_some_and(|n| self.0.is_match(n))
    }
}

/// The SQLite file magic: the first 16 bytes of every database file.
pub(crate) const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Is `path` a SQLite database, judged by content (never by name)?
pub(crate) fn is_sqlite(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == SQLITE_MAGIC
}

/// A name SQLite databases usually have (`.db`, `.sqlite`, `.sqlite3`, `.db3`).
pub(crate) fn named_like_a_database(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        ["db", "sqlite", "sqlite3", "db3"].contains(&e.to_ascii_lowercase().as_str())
    })
}

/// Files that belong to a database beside them and are never stored as files.
pub(crate) fn sqlite_sibling(path: &Path) -> Option<(&'static str, std::path::PathBuf)> {
    let name = path.file_name()?.to_str()?;
    for suffix in ["-wal", "-shm", "-journal"] {
        if let Some(db) = name.strip_suffix(suffix) {
            let db_path = path.with_file_name(db);
            if is_sqlite(&db_path) {
                return Some((suffix, db_path));
            }
        }
    }
    None
}

pub mod check;
mod copy;
pub(crate) mod growing;
mod imaged;
pub mod pages;
mod pipe;
pub mod sqlite;
pub(crate) mod streamed;
pub mod wal;
