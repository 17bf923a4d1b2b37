//! The store locks: OS file locks (flock) on two files. `STORE/lock` is held
//! exclusively by the one process that writes the index (take, gc, repair,
//! mirror, clone). `STORE/lock.readers` is held shared by readers (ls,
//! restore, verify, diff, dump, find) and exclusively by gc, the one command
//! that deletes what readers read. So readers never block each other or a
//! take, and never see gc delete a pack under them. The kernel releases a
//! lock when its holder exits or is killed, so a lock can never be stale: a
//! crashed run never blocks the next scheduled one. Waiters poll until
//! `wait` has passed, then fail with `Error::Locked` naming the holder.
//!
//! A store on a read-only file system (a mounted backup disk) cannot be
//! written by anyone, so a shared lock there is not needed and not taken.

use crate::error::{Error, Result};
use crate::progress::{Event, Reporter};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a command waits for another snap process to release the store
/// before failing with `Error::Locked`. The default is an hour, as the CLI's:
/// a scheduled take that meets a running gc waits for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockWait(pub Duration);

impl Default for LockWait {
    fn default() -> Self {
        LockWait(Duration::from_secs(3600))
    }
}

#[derive(Debug)]
pub struct StoreLock {
    _files: Vec<File>,
    exclusive: bool,
}

impl StoreLock {
    /// True for the writer's lock (index writes allowed).
    pub(crate) fn exclusive(&self) -> bool {
        self.exclusive
    }

    /// The writer's lock: index writes, no deletions readers could see.
    pub(crate) fn acquire(
        root: &Path,
        what: &str,
        wait: Duration,
        r: &Reporter,
    ) -> Result<StoreLock> {
        let file = Self::take(root, "lock", what, wait, true, r)?;
        Ok(StoreLock {
            _files: file.into_iter().collect(),
            exclusive: true,
        })
    }

    /// The writer's lock and every reader excluded: for deleting packs.
    pub(crate) fn acquire_all(
        root: &Path,
        what: &str,
        wait: Duration,
        r: &Reporter,
    ) -> Result<StoreLock> {
        let writer = Self::take(root, "lock", what, wait, true, r)?;
        let readers = Self::take(root, "lock.readers", what, wait, true, r)?;
        Ok(StoreLock {
            _files: writer.into_iter().chain(readers).collect(),
            exclusive: true,
        })
    }

    /// A reader's lock: shared with other readers and with a writer.
    pub(crate) fn acquire_shared(
        root: &Path,
        what: &str,
        wait: Duration,
        r: &Reporter,
    ) -> Result<StoreLock> {
        let file = Self::take(root, "lock.readers", what, wait, false, r)?;
        Ok(StoreLock {
            _files: file.into_iter().collect(),
            exclusive: false,
        })
    }

    /// A reader's lock, and `file` (relative to the store) held
    /// exclusively: for a mirror, which reads the store beside writers and
    /// is the only one writing its remote's state.
    pub(crate) fn acquire_reading_with(
        root: &Path,
        file: &str,
        what: &str,
        wait: Duration,
        r: &Reporter,
    ) -> Result<StoreLock> {
        let own = Self::take(root, file, what, wait, true, r)?;
        let readers = Self::take(root, "lock.readers", what, wait, false, r)?;
        Ok(StoreLock {
            _files: own.into_iter().chain(readers).collect(),
            exclusive: false,
        })
    }

    fn take(
        root: &Path,
        name: &str,
        what: &str,
        wait: Duration,
        exclusive: bool,
        reporter: &Reporter,
    ) -> Result<Option<File>> {
        let path = root.join(name);
        let opened = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path);
        let mut file = match opened {
            Ok(f) => f,
            Err(e) if !exclusive && read_only(&e) => match File::open(&path) {
                Ok(f) => f,
                // Nobody can write a store on a read-only file system.
                Err(_) => return Ok(None),
            },
            Err(e) => return Err(Error::io("open", &path)(e)),
        };
        let start = Instant::now();
        let mut said = false;
        loop {
            let tried = if exclusive {
                file.try_lock()
            } else {
                file.try_lock_shared()
            };
            match tried {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if start.elapsed() < wait => {
                    if !said && start.elapsed() > Duration::from_millis(500) {
                        reporter.send(Event::Waiting {
                            holder: holder(&mut file),
                        });
                        said = true;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::Locked {
                        store: root.to_path_buf(),
                        holder: holder(&mut file),
                        waited_secs: start.elapsed().as_secs(),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(Error::io("lock", &path)(e)),
            }
        }
        if exclusive {
            // Who holds the lock, for the message another process shows while waiting.
            let host = gethostname::gethostname().to_string_lossy().into_owned();
            let note = format!(
                "held by a snap {what} (pid {} on {host}, since {})",
                std::process::id(),
                chrono::Local::now().format("%Y-%m-%d %H:%M:%S")
            );
            let _ = file
                .set_len(0)
                .and_then(|_| file.rewind())
                .and_then(|_| file.write_all(note.as_bytes()));
        }
        Ok(Some(file))
    }
}

/// What the holder of a lock wrote into its file.
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|_| file.read_to_string(&mut text));
    let text = text.trim();
    if text.is_empty() {
        "held by another snap process".into()
    } else {
        text.into()
    }
}

/// Errors that mean "this file system or file cannot be written by us".
pub(crate) fn read_only(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM)
    )
}
