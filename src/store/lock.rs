//! The store lock: an OS file lock (flock) on `STORE/lock`, held by the one
//! process that uses the index (take, gc, restore, verify, repair). The kernel
//! releases it when its holder exits or is killed, so a lock can never be
//! stale: a crashed run never blocks the next scheduled one. Waiters poll
//! until `wait` has passed, then fail with `Error::Locked` naming the holder.

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl StoreLock {
    pub fn acquire(root: &Path, what: &str, wait: Duration) -> Result<StoreLock> {
        let path = root.join("lock");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(Error::io("open", &path))?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if start.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    return Err(Error::Locked {
                        store: root.to_path_buf(),
                        holder: holder.trim().to_string(),
                        waited_secs: start.elapsed().as_secs(),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(Error::io("lock", &path)(e)),
            }
        }
        // Who holds the lock, for the message another process shows while waiting.
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let note = format!(
            "held by `snap {what}`, pid {} on {host}",
            std::process::id()
        );
        let _ = file
            .set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| file.write_all(note.as_bytes()));
        Ok(StoreLock { _file: file })
    }
}
