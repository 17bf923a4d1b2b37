//! Catalogs: small sealed objects from which a fleet's operator learns what
//! each store holds on the remote without opening every record.
//!
//! A mirror run that created records (or whose last catalog is older than
//! `HEARTBEAT`) creates one `catalogs/<20 digits ns>-<8 hex>` after them:
//! an entry per record it created, and the host's summary as of the run.
//! Hosts only create catalogs (a create-only credential suffices); the
//! operator compacts them (`fleet::compact`). Invariant: a catalog is
//! created only after every record it names was created, and a record is
//! queued for a catalog (`q` in the state) in the same write that notes it
//! sent, so every record sent is named by a catalog once a run completes.

use super::crypt::Codec;
use super::layout;
use super::state::State;
use super::{MirrorReport, Remote};
use crate::error::Result;
use crate::format::record::Snapshot;
use crate::id::SnapshotId;
use crate::store::{Store, Verified};
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The catalog format this snap writes.
pub const CATALOG_FORMAT: u32 = 1;

/// A run that created nothing still writes a catalog this often (ns), so
/// the operator sees the host's mirror is alive.
const HEARTBEAT: i64 = 3600 * 1_000_000_000;

/// One catalog object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Catalog {
    /// `CATALOG_FORMAT`.
    pub catalog: u32,
    /// The store it describes (its prefix in a fleet bucket).
    pub store_id: String,
    /// The host's name when it was written.
    pub host: String,
    /// When it was written, by the writer's clock.
    pub written: DateTime<FixedOffset>,
    /// The records it adds.
    pub entries: Vec<Entry>,
    /// The catalogs this one replaces (written by the operator's compaction).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaces: Vec<String>,
    /// The host's summary at writing.
    pub summary: Summary,
}

/// One record on the remote, as the operator needs to see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The snapshot id (hex).
    pub id: String,
    /// When it was taken (the host's clock).
    pub time: DateTime<FixedOffset>,
    /// What it holds.
    pub paths: Vec<String>,
    /// Its tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// A point of a watched database (not a take).
    #[serde(default)]
    pub point: bool,
    /// Each database it holds, and whether its check passed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<(String, bool)>,
    /// Plain bytes of its content.
    pub size: u64,
    /// Bytes it added to the store.
    pub added: u64,
}

impl Entry {
    /// The entry of record `id`.
    pub fn of(id: &SnapshotId, s: &Snapshot) -> Entry {
        Entry {
            id: id.to_hex(),
            time: s.time,
            paths: s.paths.clone(),
            tags: s.tags.clone(),
            point: s.point.is_some(),
            databases: s
                .databases
                .iter()
                .map(|d| (d.path.clone(), d.check_ok()))
                .collect(),
            size: s.stats.size,
            added: s.stats.added,
        }
    }
}

/// The newest record of one path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Newest {
    /// Its id (hex).
    pub id: String,
    /// When it was taken.
    pub time: DateTime<FixedOffset>,
    /// A point, not a take.
    pub point: bool,
    /// Every database check in it passed.
    pub check_ok: bool,
}

/// A host's state on the remote, as of one catalog.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Records the host created on the remote, in all.
    pub records: u64,
    /// Bytes it sent, in all.
    pub bytes_sent: u64,
    /// Per path it protects: its newest record there.
    pub newest: BTreeMap<String, Newest>,
    /// The mirror run that wrote this.
    pub last_mirror: Option<DateTime<FixedOffset>>,
    /// The host's last whole verify of its store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Verified>,
}

impl Summary {
    /// Adds `entry` (a record now on the remote).
    fn add(&mut self, e: &Entry) {
        self.records += 1;
        let check_ok = e.databases.iter().all(|(_, ok)| *ok);
        for path in &e.paths {
            let newer = self.newest.get(path).is_none_or(|n| n.time <= e.time);
            if newer {
                let n = Newest {
                    id: e.id.clone(),
                    time: e.time,
                    point: e.point,
                    check_ok,
                };
                self.newest.insert(path.clone(), n);
            }
        }
    }
}

/// The summary as of the records `state` says were sent: from its file,
/// or (lost, or a state older than catalogs) from the records still here.
fn summary(store: &Store, state: &State) -> Result<Summary> {
    if let Some(s) = state.summary()? {
        return Ok(s);
    }
    let mut s = Summary::default();
    for line in state.sent.range("r ".to_string().."r!".to_string()) {
        let queued = format!("q {}", &line[2..]);
        let id = SnapshotId::from_hex(&line[2..]);
        if let Some((id, rec)) = id
            .filter(|_| !state.has(&queued))
            .and_then(|id| Some((id, store.load_snapshot(&id).ok()?)))
        {
            s.add(&Entry::of(&id, &rec));
        }
    }
    Ok(s)
}

/// Creates this run's catalog when it is due: records were queued (and the
/// last catalog is at least `every` old), or the last one is older than
/// `HEARTBEAT`. Then the summary is kept and the
/// queue emptied; a crash before that names those records again in the
/// next catalog (readers take an id once).
pub(super) fn write(
    store: &Store,
    remote: &Remote,
    codec: &Codec,
    state: &mut State,
    report: &MirrorReport,
    every: Option<std::time::Duration>,
) -> Result<()> {
    let mut summary = summary(store, state)?;
    let now = chrono::Local::now().fixed_offset();
    let age = |t: DateTime<FixedOffset>| (now - t).to_std().unwrap_or_default();
    if every.is_some_and(|e| summary.last_mirror.is_some_and(|t| age(t) < e)) {
        return Ok(());
    }
    let queued: Vec<SnapshotId> = state
        .sent
        .range("q ".to_string().."q!".to_string())
        .filter_map(|l| SnapshotId::from_hex(&l[2..]))
        .collect();
    let stale = summary
        .last_mirror
        .is_none_or(|t| (now - t).num_nanoseconds().is_none_or(|n| n >= HEARTBEAT));
    if queued.is_empty() && !stale && report.bytes_uploaded == 0 {
        return Ok(());
    }
    // A record forgotten here since it was sent cannot be described: the
    // operator still finds it among the remote's records.
    let entries: Vec<Entry> = queued
        .iter()
        .filter_map(|id| Some(Entry::of(id, &store.load_snapshot(id).ok()?)))
        .collect();
    entries.iter().for_each(|e| summary.add(e));
    summary.bytes_sent += report.bytes_uploaded;
    summary.last_mirror = Some(now);
    summary.verified = store.last_verified()?;
    let catalog = Catalog {
        catalog: CATALOG_FORMAT,
        store_id: store.config().store_id.clone(),
        host: gethostname::gethostname().to_string_lossy().into_owned(),
        written: now,
        entries,
        replaces: Vec::new(),
        summary,
    };
    let plain = serde_json::to_vec(&catalog).expect("catalog encodes");
    let nanos = now.timestamp_nanos_opt().unwrap_or_default().max(0) as u128;
    let key = layout::catalog_key(nanos, &super::crypt::random_key());
    remote.put_new(&key, codec.seal(&plain)?)?;
    state.set_summary(&catalog.summary)?;
    state.forget(|l| !l.starts_with("q "))
}
