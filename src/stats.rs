//! stats: what a store holds and what it costs, from the snapshot records,
//! the pack files and the index (restic's `stats`). Reads no pack content
//! but databases' unit lists (`databases`).

use crate::error::Result;
use crate::format::record::Snapshot;
use crate::gc::{gc, GcOptions};
use crate::id::{ChunkId, SnapshotId};
use crate::select::Selection;
use crate::store::{LockWait, Store};
use std::collections::{BTreeMap, HashSet};

/// What to count.
#[derive(Clone, Debug, Default)]
pub struct StatsOptions {
    /// Only these snapshots in the per-snapshot, per-day and per-database
    /// figures (the store's totals are the whole store's).
    pub selection: Selection,
    /// Count each database's stored bytes (reads every unit list).
    pub databases: bool,
    /// What a `gc` with this policy would free (a dry run: nothing changes).
    pub gc: Option<GcOptions>,
    /// How long to wait for the store.
    pub lock_wait: LockWait,
}

/// The store's figures.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct StoreStats {
    /// Snapshots in the store.
    pub snapshots: usize,
    /// Plain bytes of every snapshot's content, added up (what restoring
    /// every snapshot would write).
    pub logical: u64,
    /// Bytes on disk: pack files and the index.
    pub stored: u64,
    /// Pack files, and their bytes.
    pub packs: u64,
    /// Bytes of the pack files.
    pub pack_bytes: u64,
    /// Bytes of the index.
    pub index_bytes: u64,
    /// `logical / stored`: how many times over deduplication and
    /// compression hold the history.
    pub dedup_ratio: f64,
    /// Pack bytes a `gc` with the given policy would free (dry run).
    pub gc_would_free: Option<u64>,
    /// Snapshots a `gc` with the given policy would forget.
    pub gc_would_forget: Option<usize>,
    /// Each selected snapshot, oldest first.
    pub per_snapshot: Vec<SnapshotStats>,
    /// Each day (UTC) with selected snapshots.
    pub per_day: Vec<DayStats>,
    /// Each database path in the selected snapshots.
    pub per_database: Vec<DatabaseStats>,
    /// Snapshot records that are corrupt, each with its problem: left out
    /// of every figure, and named.
    pub bad_records: Vec<String>,
}

/// One snapshot's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SnapshotStats {
    /// Full id.
    pub id: String,
    /// When it was taken.
    pub time: chrono::DateTime<chrono::FixedOffset>,
    /// Host it was taken on.
    pub host: String,
    /// Plain bytes of its content.
    pub logical: u64,
    /// Bytes it added to the store when it was taken (packs and index).
    pub added: u64,
    /// Files and databases in it.
    pub files: u64,
    /// Databases in it.
    pub databases: u64,
}

/// One day's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DayStats {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// Snapshots taken that day.
    pub snapshots: usize,
    /// Bytes they added to the store.
    pub added: u64,
    /// Plain bytes of the day's largest snapshot.
    pub logical: u64,
}

/// One database's figures across the selected snapshots.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DatabaseStats {
    /// Path inside the snapshots (`root/sub/app.db`).
    pub path: String,
    /// Snapshots holding it.
    pub snapshots: usize,
    /// Its image's size in the newest of them.
    pub latest_size: u64,
    /// Stored (compressed) bytes of the distinct units of all its images:
    /// what its history costs (units shared with another database count
    /// for each). With `databases` only.
    pub stored: Option<u64>,
    /// Distinct units. With `databases` only.
    pub units: Option<u64>,
}

/// Counts a store's figures (see `StatsOptions`).
pub fn stats(store: &Store, opts: &StatsOptions) -> Result<StoreStats> {
    let (all, bad_records) = store.snapshots_checked()?;
    let mut out = StoreStats {
        snapshots: all.len(),
        bad_records,
        logical: all.iter().map(|(_, s)| s.stats.size).sum(),
        ..Default::default()
    };
    for (_, len) in store.pack_sizes()? {
        out.packs += 1;
        out.pack_bytes += len;
    }
    out.index_bytes = store.index_bytes();
    out.stored = out.pack_bytes + out.index_bytes;
    out.dedup_ratio = out.logical as f64 / out.stored.max(1) as f64;
    let selected: Vec<(SnapshotId, Snapshot)> = all
        .into_iter()
        .filter(|(_, s)| opts.selection.matches(s))
        .collect();
    out.per_snapshot = selected.iter().map(snapshot_stats).collect();
    out.per_day = per_day(&out.per_snapshot);
    out.per_database = per_database(store, &selected, opts)?;
    if let Some(g) = &opts.gc {
        let plan = gc(
            store,
            &GcOptions {
                dry_run: true,
                ..g.clone()
            },
        )?;
        out.gc_would_free = Some(plan.bytes_freed);
        out.gc_would_forget = Some(plan.forgotten);
    }
    Ok(out)
}

fn snapshot_stats((id, s): &(SnapshotId, Snapshot)) -> SnapshotStats {
    SnapshotStats {
        id: id.to_hex(),
        time: s.time,
        host: s.host.clone(),
        logical: s.stats.size,
        added: s.stats.added,
        files: s.stats.files,
        databases: s.stats.databases,
    }
}

/// The snapshots grouped by their UTC day, in order.
fn per_day(snaps: &[SnapshotStats]) -> Vec<DayStats> {
    let mut days: BTreeMap<String, DayStats> = BTreeMap::new();
    for s in snaps {
        let day = s
            .time
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d")
            .to_string();
        let d = days.entry(day.clone()).or_insert(DayStats {
            day,
            snapshots: 0,
            added: 0,
            logical: 0,
        });
        d.snapshots += 1;
        d.added += s.added;
        d.logical = d.logical.max(s.logical);
    }
    days.into_values().collect()
}

/// Each database path's figures; with `opts.databases`, the stored bytes of
/// the distinct units of its images, found through the index.
fn per_database(
    store: &Store,
    snaps: &[(SnapshotId, Snapshot)],
    opts: &StatsOptions,
) -> Result<Vec<DatabaseStats>> {
    let mut dbs: BTreeMap<String, DatabaseStats> = BTreeMap::new();
    for (_, s) in snaps {
        for d in &s.databases {
            let e = dbs.entry(d.path.clone()).or_insert(DatabaseStats {
                path: d.path.clone(),
                snapshots: 0,
                latest_size: 0,
                stored: None,
                units: None,
            });
            e.snapshots += 1;
            e.latest_size = d.page_count * d.page_size as u64;
        }
    }
    if !opts.databases || dbs.is_empty() {
        return Ok(dbs.into_values().collect());
    }
    let reader = store.reading("stats", opts.lock_wait.0)?;
    for db in dbs.values_mut() {
        let mut units: HashSet<ChunkId> = HashSet::new();
        for (_, s) in snaps
            .iter()
            .filter(|(_, s)| s.databases.iter().any(|d| d.path == db.path))
        {
            let top = reader.tree(&s.tree)?;
            let node = crate::restore::lookup(&reader, &top, &db.path)?;
            if let Some((_, list)) = node.kind.database() {
                for id in reader.units(list) {
                    units.insert(id?);
                }
            }
        }
        let mut stored = 0;
        for id in &units {
            stored += reader.locate(id)?.entry.length as u64;
        }
        db.stored = Some(stored);
        db.units = Some(units.len() as u64);
    }
    Ok(dbs.into_values().collect())
}

/// Stored bytes over time: after each snapshot (oldest first), the bytes
/// the snapshots so far added, as (time in seconds, bytes): the series the
/// growth chart draws.
pub fn growth(snaps: &[SnapshotStats]) -> Vec<(i64, u64)> {
    let mut total = 0;
    snaps
        .iter()
        .map(|s| {
            total += s.added;
            (s.time.timestamp(), total)
        })
        .collect()
}
