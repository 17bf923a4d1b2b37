//! gc: retention plan -> forget -> mark -> sweep/repack -> index.
//!
//! Runs under the store lock, so no `take` runs meanwhile: a take either
//! finished before gc started (its snapshot is marked like any other) or
//! starts after gc finished (it deduplicates against what gc kept). This is
//! the whole concurrency argument; see DESIGN.md "Concurrency".
//!
//! Durability order: forgotten records are deleted first (a crash then only
//! leaves unreferenced chunks); repacked live entries are written to new
//! packs, fsynced and indexed before any old pack is touched; the index drops
//! the old packs in one commit; only then are the old pack files deleted.
//! Killing gc at any point leaves every kept snapshot restorable.

use crate::error::{Error, Result};
use crate::format::entry::delta_base;
use crate::format::pack::{EntryKind, PackEntry};
use crate::format::tree::{Node, NodeKind};
use crate::id::{ChunkId, PackId, SnapshotId};
use crate::packer::Packer;
use crate::retention::{self, Candidate, GroupBy, Plan, Policy};
use crate::store::{fsutil, packs, Index, Store, StoreReader};
use chrono::{DateTime, FixedOffset};
use std::collections::HashSet;
use std::fs;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct GcOptions {
    pub policy: Policy,
    pub group_by: GroupBy,
    /// Print the plan and what would be freed; change nothing.
    pub dry_run: bool,
    /// Repack a pack when more than this share of its bytes is dead.
    pub repack_threshold: f64,
    /// "Now" for the policy (future snapshots are never forgotten).
    pub now: Option<DateTime<FixedOffset>>,
    pub lock_wait: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            policy: Policy::default(),
            group_by: GroupBy::default(),
            dry_run: false,
            repack_threshold: 0.10,
            now: None,
            lock_wait: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Default, serde::Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub plan: Plan,
    pub forgotten: usize,
    pub kept: usize,
    pub live_chunks: u64,
    pub packs_deleted: u64,
    pub packs_repacked: u64,
    pub packs_written: u64,
    /// Pack bytes before minus pack bytes after.
    pub bytes_freed: u64,
    pub duration_ms: u64,
    /// Packs whose header could not be read; left untouched.
    pub bad_packs: Vec<String>,
}

/// What the sweep decided for one pack.
struct PackFate {
    id: PackId,
    size: u64,
    entries: Vec<PackEntry>,
    live: Vec<PackEntry>,
}

pub fn gc(store: &Store, opts: &GcOptions) -> Result<GcReport> {
    let start = Instant::now();
    let lock = store.lock("gc", opts.lock_wait)?;
    let index = store.open_index(&lock)?;
    let (plan, kept) = plan_store(store, opts)?;
    let mut report = GcReport {
        dry_run: opts.dry_run,
        forgotten: plan.forget().count(),
        kept: plan.keep().count(),
        ..Default::default()
    };
    let reader = StoreReader::new(store, &index)?;
    // Mark first, even before forgetting: if a kept snapshot cannot be read
    // completely, gc stops here having changed nothing.
    let live = mark(&reader, kept.iter())?;
    report.live_chunks = live.len() as u64;
    let fates = sweep_plan(store, &index, &live, &mut report)?;
    let (dead, repack): (Vec<_>, Vec<_>) = fates
        .into_iter()
        .filter(|f| f.live.len() < f.entries.len())
        .partition(|f| f.live.is_empty());
    let repack: Vec<_> = repack
        .into_iter()
        .filter(|f| dead_share(f) > opts.repack_threshold)
        .collect();
    report.packs_deleted = dead.len() as u64;
    report.packs_repacked = repack.len() as u64;
    report.plan = plan;
    if opts.dry_run {
        report.bytes_freed = dead.iter().map(|f| f.size).sum::<u64>()
            + repack.iter().map(|f| f.size - live_bytes(f)).sum::<u64>();
        report.duration_ms = start.elapsed().as_millis() as u64;
        return Ok(report);
    }
    for d in report.plan.forget() {
        let id = SnapshotId::from_hex(&d.id).expect("ids come from the store");
        let path = store.snapshot_path(&id);
        fs::remove_file(&path).map_err(Error::io("remove", &path))?;
        index.remove_snapshot(&id)?;
    }
    fsutil::fsync_dir(&store.root().join("snapshots"))?;
    let written = repack_live(store, &index, &reader, &repack)?;
    report.packs_written = written.len() as u64;
    let old: Vec<&PackFate> = dead.iter().chain(&repack).collect();
    index.drop_packs(
        &old.iter()
            .map(|f| (f.id, f.entries.iter().map(|e| e.id).collect()))
            .collect::<Vec<_>>(),
    )?;
    let mut freed = old.iter().map(|f| f.size).sum::<u64>();
    for f in &old {
        let path = store.pack_path(&f.id);
        fs::remove_file(&path).map_err(Error::io("remove pack", &path))?;
        fsutil::fsync_dir(path.parent().expect("packs/xx"))?;
    }
    freed = freed.saturating_sub(written.iter().sum::<u64>());
    report.bytes_freed = freed;
    clean_tmp(store)?;
    report.duration_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

/// The retention plan for a store's snapshots, and the snapshots it keeps.
pub fn plan_store(store: &Store, opts: &GcOptions) -> Result<(Plan, Vec<crate::Snapshot>)> {
    let snapshots = store.snapshots()?;
    let candidates: Vec<Candidate> = snapshots
        .iter()
        .map(|(id, s)| Candidate {
            id: id.to_hex(),
            time: s.time,
            host: s.host.clone(),
            paths: s.paths.clone(),
            tags: s.tags.clone(),
        })
        .collect();
    let now = opts
        .now
        .unwrap_or_else(|| chrono::Local::now().fixed_offset());
    let plan = retention::plan(
        &opts.policy,
        &candidates,
        opts.group_by,
        now,
        &chrono::Local,
    )?;
    let keep: HashSet<&str> = plan.keep().map(|d| d.id.as_str()).collect();
    let kept = snapshots
        .into_iter()
        .filter(|(id, _)| keep.contains(id.to_hex().as_str()))
        .map(|(_, s)| s)
        .collect();
    Ok((plan, kept))
}

fn live_bytes(f: &PackFate) -> u64 {
    f.live.iter().map(|e| e.length as u64).sum()
}

fn dead_share(f: &PackFate) -> f64 {
    let total: u64 = f.entries.iter().map(|e| e.length as u64).sum();
    if total == 0 {
        return 1.0;
    }
    1.0 - live_bytes(f) as f64 / total as f64
}

/// Every chunk the given snapshots need, including the bases of deltas.
/// Memory: one set entry per live chunk, whatever the number of snapshots;
/// a subtree already walked is not walked again.
pub fn mark<'s>(
    reader: &StoreReader,
    snapshots: impl Iterator<Item = &'s crate::Snapshot>,
) -> Result<HashSet<ChunkId>> {
    let mut m = Marker {
        reader,
        live: HashSet::new(),
        walked: HashSet::new(),
    };
    for s in snapshots {
        m.ids(&s.tree)?;
        for node in reader.tree(&s.tree)?.nodes {
            m.node(&node)?;
        }
    }
    Ok(m.live)
}

struct Marker<'r, 'a> {
    reader: &'r StoreReader<'a>,
    live: HashSet<ChunkId>,
    /// Subtrees already walked, keyed by the hash of their chunk list.
    walked: HashSet<ChunkId>,
}

impl Marker<'_, '_> {
    fn ids(&mut self, ids: &[ChunkId]) -> Result<()> {
        for id in ids {
            if !self.live.insert(*id) {
                continue;
            }
            let loc = self.reader.index.locate(id)?;
            if loc.entry.kind == EntryKind::Delta {
                let stored = self.reader.packs.read_stored(&loc)?;
                let base = delta_base(&stored)
                    .ok_or_else(|| Error::corrupt(format!("chunk {id}"), "delta without base"))?;
                self.reader.index.locate(&base)?;
                self.live.insert(base);
            }
        }
        Ok(())
    }

    fn node(&mut self, node: &Node) -> Result<()> {
        match &node.kind {
            NodeKind::File { chunks } => self.ids(chunks),
            NodeKind::Symlink { .. } => Ok(()),
            NodeKind::Database(db) => self.ids(&db.chunks),
            NodeKind::Dir { tree } => {
                let key = ChunkId::of(&tree.iter().flat_map(|c| c.0).collect::<Vec<u8>>());
                if !self.walked.insert(key) {
                    return Ok(());
                }
                self.ids(tree)?;
                for child in self.reader.tree(tree)?.nodes {
                    self.node(&child)?;
                }
                Ok(())
            }
        }
    }
}

/// Reads every pack's header and decides which entries are live: needed by
/// a kept snapshot *and* the copy the index points to (a duplicate left by a
/// crashed take is dead).
fn sweep_plan(
    store: &Store,
    index: &Index,
    live: &HashSet<ChunkId>,
    report: &mut GcReport,
) -> Result<Vec<PackFate>> {
    let reader = index.reader()?;
    let mut out = Vec::new();
    for (id, path) in store.pack_files()? {
        let entries = match packs::read_header(&path) {
            Ok(e) => e,
            Err(e) => {
                report.bad_packs.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let size = fs::metadata(&path).map_err(Error::io("stat", &path))?.len();
        let mut live_entries = Vec::new();
        for e in &entries {
            if live.contains(&e.id) && reader.get(&e.id)?.is_some_and(|l| l.pack == id) {
                live_entries.push(e.clone());
            }
        }
        out.push(PackFate {
            id,
            size,
            entries,
            live: live_entries,
        });
    }
    Ok(out)
}

/// Copies the live entries of `repack` into new packs, durable and indexed
/// before this returns. Returns the sizes of the packs written.
fn repack_live(
    store: &Store,
    index: &Index,
    reader: &StoreReader,
    repack: &[PackFate],
) -> Result<Vec<u64>> {
    let mut packer = Packer::new(store);
    let mut sizes = Vec::new();
    for f in repack {
        let locs: Vec<_> = f
            .live
            .iter()
            .map(|e| crate::store::Location {
                pack: f.id,
                entry: e.clone(),
            })
            .collect();
        let stored = reader.packs.read_stored_many(&locs);
        let mut batch = Vec::with_capacity(locs.len());
        for (loc, bytes) in locs.into_iter().zip(stored) {
            let bytes = bytes?;
            // Verify while copying: gc never spreads a corrupt entry.
            let base = match loc.entry.kind {
                EntryKind::Delta => Some(reader.chunk(&delta_base(&bytes).expect("checked"))?),
                _ => None,
            };
            packs::decode_named(&loc, &bytes, base.as_deref())?;
            batch.push((loc.entry, bytes));
        }
        for sealed in packer.add_stored(batch)? {
            index.relocate(&sealed.id, sealed.size, &sealed.entries)?;
            sizes.push(sealed.size);
        }
    }
    for sealed in packer.finish()? {
        index.relocate(&sealed.id, sealed.size, &sealed.entries)?;
        sizes.push(sealed.size);
    }
    Ok(sizes)
}

/// Temporary files left by killed processes. Safe under the store lock:
/// nobody else is writing there.
fn clean_tmp(store: &Store) -> Result<()> {
    let tmp = store.tmp_dir();
    for entry in fs::read_dir(&tmp).map_err(Error::io("read", &tmp))? {
        let path = entry.map_err(Error::io("read", &tmp))?.path();
        if path.is_file() {
            let _ = fs::remove_file(&path);
        }
    }
    Ok(())
}
