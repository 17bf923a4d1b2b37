//! Whether each watched database is followed: its newest point against the
//! time its log (or, in rollback mode, its file) was last written. Read
//! from the store and `stat`s alone, so `status` can say it with no state
//! kept by the watcher.

use crate::error::Result;
use crate::id::SnapshotId;
use crate::store::Store;
use chrono::{DateTime, FixedOffset};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One watched database's state.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Health {
    /// The database.
    pub path: PathBuf,
    /// Its newest point, and when it was taken.
    pub newest: Option<(SnapshotId, DateTime<FixedOffset>)>,
    /// When its log (or its file, in rollback mode) was last written.
    pub written: Option<DateTime<FixedOffset>>,
    /// Written more than the grace after its newest point (or never
    /// followed): the watcher is not running, or cannot keep up.
    pub behind: bool,
}

/// The state of every database under `paths` (as `watch` finds them),
/// with `grace` allowed between a write and the point that holds it.
pub fn health(store: &Store, paths: &[PathBuf], grace: Duration) -> Result<Vec<Health>> {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let roots: Vec<PathBuf> = paths
        .iter()
        .filter_map(|p| std::path::absolute(p).ok())
        .collect();
    let mut out: Vec<Health> = super::databases(&roots)
        .into_iter()
        .map(|path| Health {
            written: written(&path),
            path,
            newest: None,
            behind: false,
        })
        .collect();
    let mut left = out.len();
    for id in store.snapshot_ids_recent_first()? {
        if left == 0 {
            break;
        }
        let Ok(s) = store.load_snapshot(&id) else {
            continue;
        };
        let Some(h) = out.iter_mut().find(|h| {
            h.newest.is_none()
                && s.point.is_some()
                && s.host == host
                && s.paths.len() == 1
                && Path::new(&s.paths[0]) == h.path
        }) else {
            continue;
        };
        h.newest = Some((id, s.time));
        left -= 1;
    }
    let grace = chrono::Duration::from_std(grace).unwrap_or_default();
    for h in &mut out {
        h.behind = match (&h.newest, h.written) {
            (None, _) => true,
            (Some((_, t)), Some(w)) => w > *t + grace,
            (Some(_), None) => false,
        };
    }
    Ok(out)
}

/// The last write to the database's log, or to the file without one.
fn written(db: &Path) -> Option<DateTime<FixedOffset>> {
    let mut wal = db.as_os_str().to_os_string();
    wal.push("-wal");
    let m = std::fs::metadata(&wal)
        .ok()
        .filter(|m| m.len() > 0)
        .or_else(|| std::fs::metadata(db).ok())?;
    let t: DateTime<chrono::Local> = m.modified().ok()?.into();
    Some(t.fixed_offset())
}
