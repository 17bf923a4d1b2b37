//! The one seam every durable write of the store goes through: temporary
//! files, their fsync and rename, directory fsyncs, removals, and the redb
//! index file's writes (through `IndexBackend`).
//!
//! Contract (the crash argument in DESIGN.md rests on it): a file's bytes are
//! durable only after `TempFile::sync` (or the index backend's `sync_data`);
//! a name created, renamed or removed is durable only after `fsync_dir` of
//! its directory. Nothing else is assumed of the file system.
//!
//! Tests can watch this seam (`testing`): every operation under a store root
//! is logged with its bytes, so a power cut can be replayed by keeping only
//! what was made durable, and a crash can be injected at the N-th operation.

use crate::error::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// A file being written under a temporary name, made durable by `sync` and
/// given its final name by `persist`.
pub(crate) struct TempFile {
    file: tempfile::NamedTempFile,
    len: u64,
}

impl TempFile {
    /// A new, empty file in `dir` named `prefix…`; removed if dropped unpersisted.
    pub(crate) fn new_in(dir: &Path, prefix: &str) -> Result<TempFile> {
        let file = tempfile::Builder::new()
            .prefix(prefix)
            .tempfile_in(dir)
            .map_err(Error::io("create temporary file in", dir))?;
        note(|| Op::Create(file.path().to_path_buf())).map_err(Error::io("create", file.path()))?;
        Ok(TempFile { file, len: 0 })
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        let len = self.len;
        note(|| Op::Write(self.file.path().to_path_buf(), len, bytes.to_vec()))
            .and_then(|_| self.file.write_all(bytes))
            .map_err(Error::io("write", self.file.path()))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Makes the bytes written so far durable (fsync).
    pub fn sync(&self) -> Result<()> {
        let path = self.file.path();
        note(|| Op::SyncFile(path.to_path_buf()))
            .and_then(|_| self.file.as_file().sync_all())
            .map_err(Error::io("fsync", path))
    }

    /// Renames the file to `dest` (atomically replacing it); durable only
    /// after `fsync_dir` of `dest`'s directory.
    pub(crate) fn persist(self, dest: &Path) -> Result<File> {
        note(|| Op::Rename(self.file.path().to_path_buf(), dest.to_path_buf()))
            .map_err(Error::io("rename into place", dest))?;
        self.file
            .persist(dest)
            .map_err(|e| Error::io("rename into place", dest)(e.error))
    }
}

/// Flushes a directory's entries (a create, rename or remove is durable only after this).
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    note(|| Op::SyncDir(dir.to_path_buf()))
        .and_then(|_| File::open(dir))
        .and_then(|d| d.sync_all())
        .map_err(Error::io("fsync directory", dir))
}

/// Writes `bytes` to `dest` atomically: a temporary file in `tmp_dir` is written,
/// fsynced and renamed over `dest`, then `dest`'s directory is fsynced. A crash
/// leaves either no `dest` or the whole of it, never a part.
pub fn write_atomic(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = TempFile::new_in(tmp_dir, ".tmp-")?;
    tmp.write_all(bytes)?;
    tmp.sync()?;
    tmp.persist(dest)?;
    fsync_dir(dest.parent().unwrap_or(Path::new(".")))
}

/// Removes a file; durable only after `fsync_dir` of its directory.
pub fn remove_file(path: &Path) -> Result<()> {
    note(|| Op::Remove(path.to_path_buf()))
        .and_then(|_| fs::remove_file(path))
        .map_err(Error::io("remove", path))
}

/// Renames `from` to `to`; durable only after `fsync_dir` of both directories.
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    note(|| Op::Rename(from.to_path_buf(), to.to_path_buf()))
        .and_then(|_| fs::rename(from, to))
        .map_err(Error::io("rename into place", to))
}

/// Creates `dir` and any missing parents, fsyncing each new entry's parent.
pub(crate) fn create_dir_durable(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    create_dir_durable(parent)?;
    match note(|| Op::Mkdir(dir.to_path_buf())).and_then(|_| fs::create_dir(dir)) {
        Ok(()) => fsync_dir(parent),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io("create directory", dir)(e)),
    }
}

/// The redb index file, with every write and sync passing through the seam.
#[derive(Debug)]
pub(crate) struct IndexBackend {
    inner: redb::backends::FileBackend,
    path: PathBuf,
}

impl IndexBackend {
    /// Opens (creating if needed) the index file at `path` for writing.
    pub fn open(path: &Path) -> Result<IndexBackend> {
        if !path.exists() {
            note(|| Op::Create(path.to_path_buf())).map_err(Error::io("create", path))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(Error::io("open index", path))?;
        let inner =
            redb::backends::FileBackend::new(file).map_err(|e| Error::Index(Box::new(e)))?;
        Ok(IndexBackend {
            inner,
            path: path.to_path_buf(),
        })
    }
}

type BackendResult<T> = std::result::Result<T, io::Error>;
type LockResult<T> = std::result::Result<T, redb::BackendError>;
type Bound = std::ops::Bound<u64>;

impl redb::StorageBackend for IndexBackend {
    fn len(&self) -> BackendResult<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> BackendResult<()> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> BackendResult<()> {
        note(|| Op::SetLen(self.path.clone(), len))?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> BackendResult<()> {
        note(|| Op::SyncFile(self.path.clone()))?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> BackendResult<()> {
        note(|| Op::Write(self.path.clone(), offset, data.to_vec()))?;
        self.inner.write(offset, data)
    }
    fn close(&self) -> BackendResult<()> {
        self.inner.close()
    }
    fn try_lock_range(&self, s: Bound, e: Bound) -> LockResult<bool> {
        self.inner.try_lock_range(s, e)
    }
    fn try_lock_shared_range(&self, s: Bound, e: Bound) -> LockResult<bool> {
        self.inner.try_lock_shared_range(s, e)
    }
    fn lock_range(&self, s: Bound, e: Bound) -> LockResult<()> {
        self.inner.lock_range(s, e)
    }
    fn lock_shared_range(&self, s: Bound, e: Bound) -> LockResult<()> {
        self.inner.lock_shared_range(s, e)
    }
    fn unlock_range(&self, s: Bound, e: Bound) -> LockResult<()> {
        self.inner.unlock_range(s, e)
    }
    fn query_lock_range(&self, s: Bound, e: Bound) -> LockResult<bool> {
        self.inner.query_lock_range(s, e)
    }
}

/// One mutating file-system operation, as the seam saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Create(PathBuf),
    Write(PathBuf, u64, Vec<u8>),
    SetLen(PathBuf, u64),
    SyncFile(PathBuf),
    Rename(PathBuf, PathBuf),
    Remove(PathBuf),
    Mkdir(PathBuf),
    SyncDir(PathBuf),
}

impl Op {
    fn path(&self) -> &Path {
        match self {
            Op::Create(p)
            | Op::Write(p, ..)
            | Op::SetLen(p, _)
            | Op::SyncFile(p)
            | Op::Rename(p, _)
            | Op::Remove(p)
            | Op::Mkdir(p)
            | Op::SyncDir(p) => p,
        }
    }
}

struct Watch {
    root: PathBuf,
    log: Vec<Op>,
    /// Operations still allowed before the simulated crash.
    crash_in: Option<u64>,
}

static WATCHING: AtomicBool = AtomicBool::new(false);
static WATCHES: Mutex<Vec<Watch>> = Mutex::new(Vec::new());

/// Logs `op` for a watched root, or fails it when a simulated crash is due.
/// Free when nothing is watched.
/// Tells the seam's watchers of an operation done outside it: restore
/// writes beside its targets, not in a store, through its own temporary
/// files, and the power-loss test replays those names too.
pub(crate) fn observe(op: impl FnOnce() -> Op) -> Result<()> {
    note(op).map_err(|e| {
        let path = PathBuf::from("(watched)");
        Error::io("write", path)(e)
    })
}

fn note(op: impl FnOnce() -> Op) -> io::Result<()> {
    if !WATCHING.load(Ordering::Relaxed) {
        return Ok(());
    }
    let op = op();
    let mut watches = WATCHES.lock().unwrap_or_else(|e| e.into_inner());
    let Some(w) = watches.iter_mut().find(|w| op.path().starts_with(&w.root)) else {
        return Ok(());
    };
    if let Some(n) = &mut w.crash_in {
        if *n == 0 {
            return Err(io::Error::other("simulated crash"));
        }
        *n -= 1;
    }
    w.log.push(op);
    Ok(())
}

/// Test hooks: watch a store root's operations, inject a crash.
#[doc(hidden)]
pub mod testing {
    use super::*;

    /// Starts logging every operation under `root` (replacing an earlier watch
    /// of it); with `crash_after`, the operation after that many fails, and
    /// every later one too, as if the process had died there.
    pub fn watch(root: &Path, crash_after: Option<u64>) {
        let root = std::path::absolute(root).expect("absolute root");
        let mut w = WATCHES.lock().unwrap_or_else(|e| e.into_inner());
        w.retain(|w| w.root != root);
        w.push(Watch {
            root,
            log: Vec::new(),
            crash_in: crash_after,
        });
        WATCHING.store(true, Ordering::SeqCst);
    }

    /// Stops watching `root` and returns what was logged.
    pub fn unwatch(root: &Path) -> Vec<Op> {
        let root = std::path::absolute(root).expect("absolute root");
        let mut w = WATCHES.lock().unwrap_or_else(|e| e.into_inner());
        let log = w
            .iter()
            .position(|w| w.root == root)
            .map(|i| w.remove(i).log)
            .unwrap_or_default();
        if w.is_empty() {
            WATCHING.store(false, Ordering::SeqCst);
        }
        log
    }

    /// How many operations have been logged for `root` so far.
    pub fn logged(root: &Path) -> usize {
        let root = std::path::absolute(root).expect("absolute root");
        let w = WATCHES.lock().unwrap_or_else(|e| e.into_inner());
        w.iter().find(|w| w.root == root).map_or(0, |w| w.log.len())
    }
}
