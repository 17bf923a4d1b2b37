//! mount: a reader beside restore. Every selected snapshot appears as a
//! read-only directory (FUSE), its files read on demand from the packs and
//! its databases served as their consistent images, so a file can be read,
//! or a database queried, without restoring anything.
//!
//! ```text
//! kernel -> fs (FUSE requests) -> inodes (names, trees) -> content (layout, cache) -> StoreReader
//! ```
//!
//! The mount holds the store's shared lock and one index read transaction
//! for as long as it is mounted: it shows the snapshots as they were when
//! it was mounted; `take` runs beside it, while `gc` and `forget` (which need
//! the exclusive lock) wait until it is unmounted.

mod content;
mod fs;
mod inodes;
mod names;

use crate::error::{Error, Result};
use crate::select::Selection;
use crate::store::{LockWait, Store};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to mount, and where.
#[derive(Clone, Debug, Default)]
pub struct MountOptions {
    /// An existing, empty directory.
    pub mountpoint: PathBuf,
    /// Only the snapshots it matches appear.
    pub selection: Selection,
    /// How long to wait for the store's shared lock.
    pub lock_wait: LockWait,
}

/// What was mounted, told to the caller once the mount is up.
#[derive(Clone, Debug)]
pub struct Mounted {
    /// The mount point.
    pub mountpoint: PathBuf,
    /// How many snapshots it shows.
    pub snapshots: usize,
    /// Snapshot records that are corrupt, each with its problem: not shown.
    pub bad_records: Vec<String>,
}

/// Mounts the selected snapshots of `store` read-only at
/// `opts.mountpoint`, calls `ready` once they can be read, and serves them
/// until a stop is asked for (`cancel::request`, the binary's SIGINT and
/// SIGTERM) or the mount is unmounted from outside (`umount DIR`); then
/// unmounts (detaches it when a process still has something open in it)
/// and returns.
pub fn mount(
    store: &Store,
    opts: &MountOptions,
    ready: impl FnOnce(&Mounted),
) -> Result<Unmounted> {
    check_mountpoint(&opts.mountpoint)?;
    let (all, bad_records) = store.snapshots_checked()?;
    let snaps: Vec<_> = all
        .into_iter()
        .filter(|(_, s)| opts.selection.matches(s))
        .collect();
    // The filesystem owns what it reads with (FUSE serves it from its own
    // threads for as long as it is mounted): the lock, the index and a
    // reader that holds its own handle of the store.
    let reader = store.reading("mount", opts.lock_wait.0)?;
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let table = inodes::Table::new(&snaps, now);
    let fs = fs::SnapFs::new(reader, table);
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName(format!("snap:{}", store.root().display())),
        fuser::MountOption::Subtype("snap".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    config.n_threads = Some(2);
    let session = fuser::spawn_mount(fs, &opts.mountpoint, &config)
        .map_err(|e| mount_failed(&opts.mountpoint, e))?;
    ready(&Mounted {
        mountpoint: opts.mountpoint.clone(),
        snapshots: snaps.len(),
        bad_records,
    });
    while !crate::cancel::requested() && !session.guard.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
    }
    if session.guard.is_finished() {
        // Unmounted from outside: the session ended by itself.
        session
            .join()
            .map_err(Error::io("serve the mount at", &opts.mountpoint))?;
        return Ok(Unmounted { detached: false });
    }
    match session.umount_and_join() {
        Ok(()) => Ok(Unmounted { detached: false }),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            // Something has a file or directory open in it: detach it, so it
            // is gone from the tree now; when this process ends, what was
            // still open reads as an error (ENOTCONN).
            detach(&opts.mountpoint)?;
            Ok(Unmounted { detached: true })
        }
        Err(e) => Err(Error::io("unmount", &opts.mountpoint)(e)),
    }
}

/// How a mount ended.
#[derive(Clone, Copy, Debug)]
pub struct Unmounted {
    /// It was busy (a process had something open in it) and was detached
    /// (a lazy unmount) instead.
    pub detached: bool,
}

fn detach(dir: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid(format!("{}: a path with a NUL byte", dir.display())))?;
    // SAFETY: umount2 reads a NUL-terminated path and changes nothing in
    // this process's memory.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(Error::io("detach the mount at", dir)(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn check_mountpoint(dir: &Path) -> Result<()> {
    let meta = std::fs::metadata(dir).map_err(Error::io("mount at", dir))?;
    if !meta.is_dir() {
        return Err(Error::Invalid(format!(
            "cannot mount at {}: not a directory",
            dir.display()
        )));
    }
    if !Path::new("/dev/fuse").exists() {
        return Err(Error::Invalid(
            "FUSE is not available here: /dev/fuse is missing. Install FUSE \
             (Debian/Ubuntu: apt install fuse3; Fedora: dnf install fuse3) and load \
             its module (modprobe fuse); in a container, pass --device /dev/fuse"
                .into(),
        ));
    }
    Ok(())
}

/// The mount system call (or `fusermount3`) refused: say what to install
/// or change.
fn mount_failed(dir: &Path, e: std::io::Error) -> Error {
    let hint = match e.kind() {
        std::io::ErrorKind::NotFound => {
            " (mounting without root needs fusermount3: apt install fuse3, or run as root)"
        }
        std::io::ErrorKind::PermissionDenied => {
            " (mounting needs root, or fusermount3 from the fuse3 package)"
        }
        _ => "",
    };
    Error::Io {
        op: "mount (FUSE) at",
        path: dir.to_path_buf(),
        source: std::io::Error::new(e.kind(), format!("{e}{hint}")),
    }
}
