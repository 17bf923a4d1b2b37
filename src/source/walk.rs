//! The one directory walk, for `take` and `diff --live`: which entries of a
//! directory a snapshot holds (in name order; excludes, a database's
//! `-wal`/`-shm`/`-journal` and restore's temporary files left out) and
//! what each one is.
//!
//! Paths of any length: a directory whose path grows past `SHORT` bytes is
//! opened (`O_PATH`) and reached through `/proc/self/fd/N`, so every system
//! call under it names a short path, and trees deeper than `PATH_MAX` are
//! walked (as tar and borg walk them). Messages and excludes see the real path.

use super::{is_sqlite, sqlite_sibling, Excludes};
use crate::error::{Error, Result};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Paths shorter than this are used as they are (PATH_MAX is 4096).
pub(crate) const SHORT: usize = 3072;

/// A directory: its real path, and a short path that reaches it.
#[derive(Clone, Debug)]
pub struct Dir {
    real: PathBuf,
    at: PathBuf,
    /// Held while `at` goes through it.
    _fd: Option<Arc<File>>,
}

impl Dir {
    /// A directory named by a path of ordinary length (a root).
    pub fn new(real: &Path) -> Dir {
        Dir {
            real: real.to_path_buf(),
            at: real.to_path_buf(),
            _fd: None,
        }
    }

    /// Its real path (for messages and excludes).
    pub fn real(&self) -> &Path {
        &self.real
    }

    /// A short path that reaches it.
    pub fn at(&self) -> &Path {
        &self.at
    }

    /// A short path that reaches its child `name`.
    pub fn child(&self, name: &OsStr) -> PathBuf {
        self.at.join(name)
    }

    /// Its subdirectory `name`, reached by a short path (opened when the
    /// path would grow too long; a symlink is never followed).
    pub(crate) fn enter(&self, name: &OsStr) -> std::io::Result<Dir> {
        let real = self.real.join(name);
        let at = self.at.join(name);
        if at.as_os_str().len() < SHORT {
            return Ok(Dir {
                real,
                at,
                _fd: self._fd.clone(),
            });
        }
        let fd = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(&at)?;
        Ok(Dir {
            real,
            at: PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
            _fd: Some(Arc::new(fd)),
        })
    }
}

/// What an entry is, for a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    Symlink,
    /// A file whose first bytes are the SQLite magic.
    Database,
    File,
    /// A socket, device or FIFO: not snapshotted.
    Other,
}

/// One entry of a directory.
#[derive(Debug)]
pub struct Entry {
    pub name: OsString,
    /// Its real path.
    pub real: PathBuf,
    /// A short path that reaches it.
    pub at: PathBuf,
    pub meta: Metadata,
    pub kind: Kind,
}

/// What the file at `at` is, by its metadata and, for a file, its content.
pub(crate) fn classify(at: &Path, meta: &Metadata) -> Kind {
    let ft = meta.file_type();
    if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_file() && is_sqlite(at) {
        Kind::Database
    } else if ft.is_file() {
        Kind::File
    } else {
        Kind::Other
    }
}

/// What a walk does with what it finds: take builds tree nodes, a live
/// diff a map of paths. The walk is depth first, in name order.
pub(crate) trait Visit {
    /// Anything but a directory: a file, a database, a symlink, other.
    fn leaf(&mut self, e: &Entry, rel: &str) -> Result<()>;
    /// Directory `e` is about to be listed; false leaves it out.
    fn enter(&mut self, e: &Entry, rel: &str) -> Result<bool>;
    /// Directory `e`, entered, cannot be listed: skip it (Ok) or stop.
    fn unreadable(&mut self, e: &Entry, err: std::io::Error) -> Result<()>;
    /// Directory `e`, entered, is done: every entry of it was visited.
    fn leave(&mut self, e: &Entry, rel: &str) -> Result<()>;
    /// An entry left out that the user should know of.
    fn note(&mut self, note: String);
}

/// Walks entry `e` of `dir` (`parent` its directory's path in the
/// snapshot, "" for a root) into `v`. A directory nested deeper than
/// `MAX_DEPTH` stops the walk: no snapshot records a tree that deep.
pub(crate) fn walk(
    dir: &Dir,
    e: &Entry,
    parent: &str,
    excludes: &Excludes,
    v: &mut impl Visit,
) -> Result<()> {
    crate::cancel::check()?;
    let name = String::from_utf8_lossy(e.name.as_bytes());
    let rel = match parent.is_empty() {
        true => name.into_owned(),
        false => format!("{parent}/{name}"),
    };
    if e.kind != Kind::Dir {
        return v.leaf(e, &rel);
    }
    let max = crate::format::tree::MAX_DEPTH;
    if rel.matches('/').count() >= max {
        return Err(Error::Invalid(format!(
            "{} is nested more than {max} directories deep; snap does not walk trees that deep",
            e.real.display()
        )));
    }
    if !v.enter(e, &rel)? {
        return Ok(());
    }
    let inner = dir
        .enter(&e.name)
        .map_err(Error::io("open directory", &e.real))?;
    let mut notes = Vec::new();
    let children = match entries(&inner, excludes, &mut |n| notes.push(n)) {
        Ok(list) => list,
        Err(Error::Io {
            op: "read directory",
            source,
            ..
        }) => return v.unreadable(e, source),
        Err(other) => return Err(other),
    };
    notes.into_iter().for_each(|n| v.note(n));
    for child in &children {
        walk(&inner, child, &rel, excludes, v)?;
    }
    v.leave(e, &rel)
}

/// A root as a walk sees it (take's and a live diff's): an entry of its
/// parent directory.
pub fn root(root: &Path) -> Result<Entry> {
    let meta = std::fs::symlink_metadata(root).map_err(Error::io("stat", root))?;
    Ok(Entry {
        name: root
            .file_name()
            .unwrap_or(std::ffi::OsStr::new("root"))
            .to_os_string(),
        real: root.to_path_buf(),
        at: root.to_path_buf(),
        kind: classify(root, &meta),
        meta,
    })
}

/// The entries of `dir` a snapshot holds, in name order. `note` hears of
/// each one left out that the user should know of. An entry gone since the
/// listing is simply not there; a directory that cannot be read is an
/// `Error::Io` with op "read directory".
pub fn entries(dir: &Dir, excludes: &Excludes, note: &mut dyn FnMut(String)) -> Result<Vec<Entry>> {
    let listed = fs::read_dir(dir.at())
        .and_then(|d| d.collect::<std::io::Result<Vec<_>>>())
        .map_err(Error::io("read directory", dir.real()))?;
    let mut names: Vec<OsString> = listed.into_iter().map(|e| e.file_name()).collect();
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut out = Vec::new();
    for name in names {
        let real = dir.real().join(&name);
        if excludes.matches(&real) {
            continue;
        }
        if crate::restore::journal::temp_owner(name.as_bytes()).is_some() {
            note(format!(
                "{}: a temporary file of an interrupted restore; not stored",
                real.display()
            ));
            continue;
        }
        let at = dir.child(&name);
        let meta = match fs::symlink_metadata(&at) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("stat", &real)(e)),
        };
        // -wal, -shm and -journal belong to their database's image.
        if meta.is_file() && sqlite_sibling(&at).is_some() {
            continue;
        }
        let kind = classify(&at, &meta);
        out.push(Entry {
            name,
            real,
            at,
            meta,
            kind,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // tar and borg walk trees whose paths are longer than PATH_MAX: so does
    // snap, through short paths.
    #[test]
    fn a_tree_deeper_than_path_max_is_walked() {
        let top = tempfile::tempdir().unwrap();
        let name = "d".repeat(200);
        let mut dir = Dir::new(top.path());
        for _ in 0..30 {
            fs::create_dir(dir.child(OsStr::new(&name))).unwrap();
            dir = dir.enter(OsStr::new(&name)).unwrap();
        }
        assert!(dir.real().as_os_str().len() > 6000);
        fs::write(dir.child(OsStr::new("f")), b"deep").unwrap();
        let found = entries(&dir, &Excludes::new(&[]).unwrap(), &mut |_| {}).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, Kind::File);
        assert_eq!(fs::read(&found[0].at).unwrap(), b"deep");
        assert!(found[0].real.as_os_str().len() > 6000);
    }
}
