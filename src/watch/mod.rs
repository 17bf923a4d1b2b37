//! watch: continuous protection beside take. Each watched SQLite database
//! is looked at every `interval`; when a commit happened since its last
//! point, a new **point** (a snapshot record of the database alone, at one
//! commit boundary) is recorded, costing the units of the pages that
//! changed, which the write-ahead log names (`changes`). Nothing is written
//! to the database, no read transaction outlives one look, and no
//! checkpoint is run: the application's own checkpoints go on as before.
//!
//! DESIGN.md, "Continuous protection", has the argument and the crash table.

mod changes;
mod follower;
mod health;
mod history;
mod point;
pub(crate) mod take;

use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::store::Store;
use follower::{Follower, Looked};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use health::{health, Health};
pub use history::{windows, Window};
use point::Last;

/// The default time between looks: a commit is in a point within about
/// this (plus the point's own few milliseconds), inside the one second the
/// local recovery point objective allows.
pub const INTERVAL: Duration = Duration::from_millis(500);

/// What `watch` follows, and how.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// Databases, or directories whose SQLite databases (found by content,
    /// not recursively) are watched; databases that appear are picked up.
    pub paths: Vec<PathBuf>,
    /// Time between looks at each database.
    pub interval: Duration,
    /// Tags recorded with every point.
    pub tags: Vec<String>,
    /// Stop after this long; None: until a stop is asked for (`cancel`).
    pub duration: Option<Duration>,
    /// How long a look waits for the store's writer lock (a take or gc
    /// holding it) before it is put off to the next look.
    pub lock_wait: Duration,
    /// Set to stop (besides `cancel`): the daemon's own flag.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            paths: Vec::new(),
            interval: INTERVAL,
            tags: Vec::new(),
            duration: None,
            lock_wait: Duration::from_millis(200),
            stop: None,
        }
    }
}

/// What happened at one look, for the caller's log.
#[derive(Debug)]
pub enum WatchEvent {
    /// A point was recorded.
    Point {
        /// The database.
        path: PathBuf,
        /// The point's record.
        id: SnapshotId,
        /// Pages read through SQLite.
        pages: u64,
        /// Bytes the store grew by.
        added: u64,
        /// Why every page was read, when the change was not known.
        full_read: Option<String>,
        /// Why this point starts a new window of history.
        starts: Option<String>,
    },
    /// A database's history ended (it was removed).
    Ended {
        /// The database.
        path: PathBuf,
        /// What was seen.
        why: String,
    },
    /// Looks are put off: another command (a take, gc) holds the store's
    /// writer lock. Said once, when it starts; the next look that gets the
    /// lock records what was committed meanwhile.
    PutOff {
        /// The database.
        path: PathBuf,
        /// Who holds the store.
        why: String,
    },
    /// A look failed; the next one tries again.
    Failed {
        /// The database.
        path: PathBuf,
        /// What failed.
        error: String,
    },
}

/// What a watch did, when it stopped.
#[derive(Debug, Default)]
pub struct WatchReport {
    /// Points recorded.
    pub points: u64,
    /// Of them, those that read every page.
    pub full_reads: u64,
    /// Looks that failed.
    pub failures: u64,
}

/// Watches `opts.paths` until `opts.duration` passes or a stop is asked
/// for, recording points into `store` and telling `event` of each.
pub fn watch(
    store: &Store,
    opts: &WatchOptions,
    mut event: impl FnMut(&WatchEvent),
) -> Result<WatchReport> {
    let roots = opts
        .paths
        .iter()
        .map(|p| std::path::absolute(p).map_err(Error::io("resolve", p)))
        .collect::<Result<Vec<_>>>()?;
    if let Some(missing) = roots.iter().find(|p| !p.exists()) {
        return Err(Error::NotFound(format!(
            "{} does not exist; nothing is watched",
            missing.display()
        )));
    }
    let mut followers: BTreeMap<PathBuf, Follower> = BTreeMap::new();
    let mut report = WatchReport::default();
    let start = Instant::now();
    loop {
        let tick = Instant::now();
        for db in databases(&roots) {
            if !followers.contains_key(&db) {
                let last = newest_point(store, &db)?;
                followers.insert(db.clone(), Follower::new(db, last));
            }
        }
        let stopped = || {
            crate::cancel::requested()
                || opts
                    .stop
                    .as_ref()
                    .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
        };
        for f in followers.values_mut() {
            if stopped() {
                break;
            }
            let e = look(f, store, opts, &mut report);
            if let Some(e) = e {
                event(&e);
            }
        }
        let done = opts.duration.is_some_and(|d| start.elapsed() >= d);
        if done || stopped() {
            return Ok(report);
        }
        sleep_until(tick + opts.interval, &stopped);
    }
}

/// One look at one database, as an event (None: nothing changed).
fn look(
    f: &mut Follower,
    store: &Store,
    opts: &WatchOptions,
    report: &mut WatchReport,
) -> Option<WatchEvent> {
    let looked = f.look(store, &opts.tags, opts.lock_wait);
    if !matches!(looked, Err(Error::Locked { .. })) {
        f.put_off = false;
    }
    match looked {
        Ok(Looked::Nothing) => None,
        Ok(Looked::Point { last, added }) => {
            let p = last.record.point.clone().unwrap_or_default();
            report.points += 1;
            report.full_reads += p.full_read.is_some() as u64;
            Some(WatchEvent::Point {
                path: f.path.clone(),
                id: last.id,
                pages: p.pages_read,
                added,
                full_read: p.full_read,
                starts: p.starts,
            })
        }
        Ok(Looked::Ended(why)) => Some(WatchEvent::Ended {
            path: f.path.clone(),
            why,
        }),
        Err(e @ Error::Locked { .. }) => match std::mem::replace(&mut f.put_off, true) {
            true => None,
            false => Some(WatchEvent::PutOff {
                path: f.path.clone(),
                why: e.to_string(),
            }),
        },
        Err(e) => {
            report.failures += 1;
            Some(WatchEvent::Failed {
                path: f.path.clone(),
                error: e.to_string(),
            })
        }
    }
}

/// Sleeps until `when`, waking early for a stop.
fn sleep_until(when: Instant, stopped: &dyn Fn() -> bool) {
    while !stopped() {
        let now = Instant::now();
        if now >= when {
            return;
        }
        std::thread::sleep((when - now).min(Duration::from_millis(50)));
    }
}

/// The databases under `roots` now: each root that is a SQLite file, and
/// the SQLite files directly inside each root that is a directory.
fn databases(roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for root in roots {
        if root.is_dir() {
            let Ok(rd) = std::fs::read_dir(root) else {
                continue;
            };
            let mut found: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file() && crate::source::is_sqlite(p))
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(root.clone());
        }
    }
    out
}

/// A recent snapshot of `db` alone from this host (a point, or a take of
/// the database by itself): the base of the first look. Records are read
/// most recently written first, so a store of many points is not read
/// whole; an older base only costs the first point more reads, since its
/// place in the log is checked like any other.
fn newest_point(store: &Store, db: &Path) -> Result<Option<Last>> {
    let reading = store.reading("watch", Duration::from_secs(60))?;
    newest_point_in(store, db, &reading, usize::MAX)
}

/// `newest_point`, its tree and unit list read through `reader`; with a
/// `bound`, only a point with a place in the log among the `bound` most
/// recently written records (what a take follows from).
fn newest_point_in(
    store: &Store,
    db: &Path,
    reading: &crate::store::StoreReader,
    bound: usize,
) -> Result<Option<Last>> {
    let logged = |s: &crate::Snapshot| {
        bound == usize::MAX || s.point.as_ref().is_some_and(|p| p.log.is_some())
    };
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let path = db.to_string_lossy();
    let found = store
        .snapshot_ids_recent_first()?
        .into_iter()
        .take(bound)
        .filter_map(|id| Some((id, store.load_snapshot(&id).ok()?)))
        .find(|(_, s)| s.host == host && s.paths.len() == 1 && s.paths[0] == path && logged(s));
    let Some((id, record)) = found else {
        return Ok(None);
    };
    let top = reading.tree(&record.tree)?;
    let Some(node) = top.nodes.first() else {
        return Ok(None);
    };
    let Some((image, list)) = node.kind.database() else {
        return Ok(None);
    };
    let units = reading.units(list).collect::<Result<Vec<_>>>()?;
    Ok(Some(Last {
        id,
        db: image.clone(),
        units,
        identity: (node.dev, node.inode),
        record,
    }))
}
