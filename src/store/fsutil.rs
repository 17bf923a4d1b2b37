//! Durable file-system steps shared by every write path.

use crate::error::{Error, Result};
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

/// Flushes a directory's entries (a rename or create is durable only after this).
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("fsync directory", dir))
}

/// Writes `bytes` to `dest` atomically: a temporary file in `tmp_dir` is written,
/// fsynced and renamed over `dest`, then `dest`'s directory is fsynced. A crash
/// leaves either no `dest` or the whole of it, never a part.
pub fn write_atomic(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(tmp_dir)
        .map_err(Error::io("create temporary file in", tmp_dir))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(Error::io("write", tmp.path()))?;
    tmp.persist(dest)
        .map_err(|e| Error::io("rename into place", dest)(e.error))?;
    fsync_dir(dest.parent().unwrap_or(Path::new(".")))
}

/// Creates `dir` and any missing parents, fsyncing each new entry's parent.
pub fn create_dir_durable(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    create_dir_durable(parent)?;
    match fs::create_dir(dir) {
        Ok(()) => fsync_dir(parent),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io("create directory", dir)(e)),
    }
}
