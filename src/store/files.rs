//! The small files a store keeps for the commands that use it, beside its
//! packs and records: the mirror's state (`mirror/`), the scheduled jobs'
//! state (`jobs.json`), unfinished in-place restores (`unfinished/`), the
//! last verify (`verified.json`), remote caches (`remote-cache/`). Callers
//! name a file by its path relative to the store; only the store turns that
//! into a path on disk.
//!
//! Invariant: a file is replaced atomically and durably (staged, fsynced,
//! renamed, its directory fsynced; its directory created durably first), so
//! a reader after a crash sees the old bytes or the new, never a mix.

use super::Store;
use crate::durable;
use crate::error::{Error, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// Where a replacement is staged before its rename.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Staging {
    /// In the store's `tmp/`, which the next writer's lock cleans of what a
    /// killed process left.
    Tmp,
    /// Beside the file: for a file written by a holder of a lock other than
    /// the writer's (a mirror's state), so a writer cleaning `tmp/` never
    /// removes it mid-write. `clean_staged` removes what a killed run left.
    Beside,
}

impl Store {
    /// Where store file `rel` is (for messages, and for the few readers
    /// that open it themselves, such as a lock file).
    pub(crate) fn file_path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root().join(rel)
    }

    /// The bytes of store file `rel`; None when it does not exist.
    pub(crate) fn read_file(&self, rel: impl AsRef<Path>) -> Result<Option<Vec<u8>>> {
        let path = self.file_path(rel);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", &path)(e)),
        }
    }

    /// Replaces store file `rel` with `bytes`, atomically and durably.
    pub(crate) fn write_file(
        &self,
        rel: impl AsRef<Path>,
        bytes: &[u8],
        staging: Staging,
    ) -> Result<()> {
        let path = self.file_path(rel);
        let dir = path.parent().expect("a store file is in the store");
        durable::create_dir_durable(dir)?;
        let tmp = match staging {
            Staging::Tmp => self.tmp_dir(),
            Staging::Beside => dir.to_path_buf(),
        };
        durable::write_atomic(&tmp, &path, bytes)
    }

    /// Removes store file `rel` durably; a missing file is not an error.
    pub(crate) fn remove_file(&self, rel: impl AsRef<Path>) -> Result<()> {
        let path = self.file_path(rel);
        if !path.exists() {
            return Ok(());
        }
        durable::remove_file(&path)?;
        durable::fsync_dir(path.parent().expect("in the store"))
    }

    /// The names of the files in store directory `rel` (empty when it does
    /// not exist), sorted.
    pub(crate) fn list_files(&self, rel: impl AsRef<Path>) -> Result<Vec<String>> {
        let dir = self.file_path(rel);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read", &dir)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Error::io("read", &dir))?;
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Removes what a killed run left staged beside the files of store
    /// directory `rel` (`Staging::Beside`); called by the holder of the
    /// lock that guards them.
    pub(crate) fn clean_staged(&self, rel: impl AsRef<Path>) {
        for name in self.list_files(&rel).unwrap_or_default() {
            if name.starts_with(".tmp-") {
                let _ = durable::remove_file(&self.file_path(rel.as_ref().join(name)));
            }
        }
    }

    /// A temporary file in the store's `tmp/` (a database image being
    /// captured, a read-back check), removed when dropped.
    pub(crate) fn temp_file(&self) -> Result<tempfile::NamedTempFile> {
        let tmp = self.tmp_dir();
        tempfile::NamedTempFile::new_in(&tmp).map_err(Error::io("create a temporary file in", &tmp))
    }

    /// A private file in the store's `tmp/` for the image of database `db`
    /// (up to `need` bytes), removed when dropped. Refused up front when the
    /// disk cannot hold it: nothing is recorded then.
    pub(crate) fn image_file(&self, need: u64, db: &Path) -> Result<tempfile::NamedTempFile> {
        let tmp = self.tmp_dir();
        if let Some(free) = free_bytes(&tmp).filter(|free| need > *free) {
            return Err(Error::Invalid(format!(
                "{}: its image needs up to {need} bytes in {} and only {free} are free; nothing was recorded",
                db.display(),
                tmp.display()
            )));
        }
        tempfile::Builder::new()
            .prefix(".image-")
            .tempfile_in(&tmp)
            .map_err(Error::io("create image file in", &tmp))
    }
}

/// The bytes free to this user on the file system holding `dir` (None when
/// that cannot be told).
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills `st`, a valid, exclusively borrowed struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreConfig;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(dir.path().join("s"), StoreConfig::default()).unwrap();
        (dir, store)
    }

    // A store file is created with its directories, replaced whole, listed,
    // and removed; a missing one reads as None and removes as nothing.
    #[test]
    fn a_store_file_is_replaced_whole_and_removed() {
        let (_dir, store) = store();
        assert_eq!(store.read_file("a/b/f").unwrap(), None);
        store.write_file("a/b/f", b"one", Staging::Tmp).unwrap();
        store.write_file("a/b/f", b"two", Staging::Beside).unwrap();
        assert_eq!(
            store.read_file("a/b/f").unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert_eq!(store.list_files("a/b").unwrap(), vec!["f".to_string()]);
        store.remove_file("a/b/f").unwrap();
        store.remove_file("a/b/f").unwrap();
        assert_eq!(store.read_file("a/b/f").unwrap(), None);
        assert!(store.list_files("nowhere").unwrap().is_empty());
    }

    // What a killed writer left staged beside a state file is removed by
    // the next holder of its lock; the file itself is kept.
    #[test]
    fn staged_leftovers_are_cleaned_and_the_file_kept() {
        let (_dir, store) = store();
        store
            .write_file("m/sent", b"r 1\n", Staging::Beside)
            .unwrap();
        fs::write(store.file_path("m/.tmp-killed"), b"half").unwrap();
        store.clean_staged("m");
        assert_eq!(store.list_files("m").unwrap(), vec!["sent".to_string()]);
    }

    // An image that cannot fit on the disk is refused before anything is
    // written, naming the database and the room there is.
    #[test]
    fn an_image_larger_than_the_free_space_is_refused() {
        let (_dir, store) = store();
        let err = store
            .image_file(u64::MAX, Path::new("/srv/app.db"))
            .unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err}");
        assert!(err.to_string().contains("/srv/app.db"), "{err}");
        assert!(store.image_file(1, Path::new("/srv/app.db")).is_ok());
    }
}
