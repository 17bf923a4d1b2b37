//! A watched database's history as windows: runs of points in which every
//! commit was followed, each begun by a point that says why the history
//! before it is not continuous with it (the watcher started, the database
//! was replaced). Pure: it reads records it is given.

use crate::format::record::Snapshot;
use crate::id::SnapshotId;
use chrono::{DateTime, FixedOffset};

/// One continuous window of a database's points.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Window {
    /// The database, as watched.
    pub path: String,
    /// The host that watched it.
    pub host: String,
    /// Its first and last points.
    pub first: (SnapshotId, DateTime<FixedOffset>),
    /// The newest point of the window.
    pub last: (SnapshotId, DateTime<FixedOffset>),
    /// Points in it.
    pub points: u64,
    /// Of them, those that read every page.
    pub full_reads: u64,
    /// Bytes its points added to the store.
    pub added: u64,
    /// Why the history before it is not continuous with it.
    pub starts: String,
}

/// The windows of the points among `records` (oldest first), per database
/// and host, oldest first.
pub fn windows(records: &[(SnapshotId, Snapshot)]) -> Vec<Window> {
    let mut out: Vec<Window> = Vec::new();
    for (id, s) in records {
        let Some(p) = &s.point else { continue };
        let path = s.paths.first().cloned().unwrap_or_default();
        let open = out
            .iter_mut()
            .rev()
            .find(|w| w.path == path && w.host == s.host)
            .filter(|_| p.starts.is_none());
        match open {
            Some(w) => {
                w.last = (*id, s.time);
                w.points += 1;
                w.full_reads += p.full_read.is_some() as u64;
                w.added += s.stats.added;
            }
            None => out.push(Window {
                path,
                host: s.host.clone(),
                first: (*id, s.time),
                last: (*id, s.time),
                points: 1,
                full_reads: p.full_read.is_some() as u64,
                added: s.stats.added,
                starts: p
                    .starts
                    .clone()
                    .unwrap_or_else(|| "(its first point was forgotten)".into()),
            }),
        }
    }
    out
}
