//! Restoring a database image safely: assembled beside the target from
//! chunks verified against their ids, fsynced, stale `-wal`/`-shm`/`-journal`
//! removed, renamed into place (the caller fsyncs the directory). Stale WAL frames beside a restored file
//! would corrupt it, so they never survive a restore.

use super::write::{temp_beside, Writer};
use crate::durable;
use crate::error::{Error, Result};
use crate::format::tree::{Database, Node, NodeKind};
use crate::store::StoreReader;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub(crate) const SIBLINGS: [&str; 3] = ["-wal", "-shm", "-journal"];

pub fn sibling(target: &Path, suffix: &str) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    target.with_file_name(name)
}

pub fn restore(w: &mut Writer, target: &Path, node: &Node, db: &Database) -> Result<()> {
    let tmp = temp_beside(target)?;
    let size = db.page_count * db.page_size as u64;
    let (_, list) = node.kind.database().expect("a database node");
    w.write_chunks(&tmp, size, w.reader.units(list), target)?;
    tmp.as_file()
        .sync_all()
        .map_err(Error::io("fsync", tmp.path()))?;
    // The image is checked once, when it was taken: every chunk written here
    // was verified against its id, so these bytes are the ones that check
    // passed (or failed, as the snapshot records). A second `quick_check`
    // would cost 1.4 s per GB and could not find anything the ids did not.
    let len = tmp
        .as_file()
        .metadata()
        .map_err(Error::io("stat", tmp.path()))?
        .len();
    if len != size {
        return Err(Error::corrupt(
            format!("database image {}", target.display()),
            format!(
                "{len} bytes restored for {} pages of {} bytes",
                db.page_count, db.page_size
            ),
        ));
    }
    // The old -wal, -shm and -journal go, durably, before the new file can
    // appear: a power cut must never leave the new database beside the old
    // one's WAL frames or hot journal, which SQLite would apply to it.
    let mut removed = false;
    for suffix in SIBLINGS {
        let stale = sibling(target, suffix);
        if fs::symlink_metadata(&stale).is_ok() {
            durable::remove_file(&stale)?;
            removed = true;
        }
    }
    if removed {
        durable::fsync_dir(target.parent().unwrap_or(Path::new(".")))?;
    }
    w.finish_file(tmp, target, node)
}

/// Database targets inside `node` (restored at `target`) that exist now.
pub(crate) fn databases_in(
    reader: &StoreReader,
    node: &Node,
    target: &Path,
) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    match &node.kind {
        NodeKind::Database(_) | NodeKind::ListedDatabase(_) if target.exists() => {
            out.push(target.to_path_buf())
        }
        NodeKind::Dir { tree } if target.is_dir() => {
            for child in reader.tree(tree)?.nodes {
                let path = target.join(OsStr::from_bytes(&child.name));
                out.extend(databases_in(reader, &child, &path)?);
            }
        }
        _ => {}
    }
    Ok(out)
}

/// Whether the process at `/proc/PID` is a `snap watch`: it only reads
/// (read-only, no checkpoint) and follows the new file once it is replaced.
fn is_watcher(proc_dir: &Path) -> bool {
    let exe = |p: &Path| p.file_name().map(|n| n.to_owned());
    let same_program = match (fs::read_link(proc_dir.join("exe")), std::env::current_exe()) {
        (Ok(theirs), Ok(mine)) => exe(&theirs) == exe(&mine),
        _ => false,
    };
    same_program
        && fs::read(proc_dir.join("cmdline"))
            .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == b"watch"))
}

/// Refuses when another process has the database (or its WAL) open, as far
/// as /proc shows (a `snap watch` excepted): overwriting it under a running application corrupts it.
pub(crate) fn refuse_if_open(db: &Path) -> Result<()> {
    let Ok(real) = fs::canonicalize(db) else {
        return Ok(());
    };
    let watched: Vec<PathBuf> = std::iter::once(real.clone())
        .chain(SIBLINGS.iter().map(|s| sibling(&real, s)))
        .collect();
    let me = std::process::id().to_string();
    let Ok(procs) = fs::read_dir("/proc") else {
        return Ok(());
    };
    for p in procs.flatten() {
        let pid = p.file_name();
        if pid.to_string_lossy() == me
            || !pid.as_bytes().iter().all(u8::is_ascii_digit)
            || is_watcher(&p.path())
        {
            continue;
        }
        let Ok(fds) = fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = fs::read_link(fd.path()) {
                if watched.contains(&link) {
                    return Err(Error::Refused {
                        message: format!(
                            "{} is open in process {}: stop it first (nothing was changed)",
                            db.display(),
                            pid.to_string_lossy()
                        ),
                        option: "force",
                    });
                }
            }
        }
    }
    Ok(())
}
