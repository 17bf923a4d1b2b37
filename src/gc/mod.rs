//! gc: retention plan -> mark -> pack plan -> check -> execute.
//!
//! Runs under the exclusive store lock, so no `take` runs meanwhile: a take
//! either finished before gc started (its snapshot is marked like any other)
//! or starts after gc finished (it deduplicates against what gc kept). See
//! DESIGN.md "Concurrency".
//!
//! Nothing is changed until the whole plan is computed from the pack headers
//! and checked (`plan::check`). Execution order, each step durable before the
//! next: forgotten records deleted; repacked entries written to new packs,
//! each re-read and checked against its name; one index commit naming exactly
//! the live chunks at their final places; only then are old pack files
//! deleted, and never one the new index names (a repack can produce a pack
//! with the very name of one planned for deletion: identity, not name, decides).

pub(crate) mod execute;
mod mark;
pub mod plan;

pub use execute::delta_bases;
pub use mark::mark;
pub use plan::{Fate, PackInfo, PackPlan};

use crate::error::{Error, Result};
use crate::id::PackId;
use crate::retention::{self, Candidate, GroupBy, Plan, Policy};
use crate::store::{packs, Index, Store, StoreReader};
use chrono::{DateTime, FixedOffset};
use std::collections::HashSet;
use std::fs;
use std::time::Instant;

/// How `gc` thins and frees.
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// Which snapshots to keep.
    pub policy: Policy,
    /// What a group of snapshots is (the policy applies per group).
    pub group_by: GroupBy,
    /// Print the plan and what would be freed; change nothing.
    pub dry_run: bool,
    /// Repack a pack when more than this share of its bytes is dead.
    pub repack_threshold: f64,
    /// "Now" for the policy (future snapshots are never forgotten).
    pub now: Option<DateTime<FixedOffset>>,
    /// How long to wait for the store.
    pub lock_wait: crate::store::LockWait,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            policy: Policy::default(),
            group_by: GroupBy::default(),
            dry_run: false,
            repack_threshold: 0.10,
            now: None,
            lock_wait: Default::default(),
        }
    }
}

#[derive(Debug, Default, serde::Serialize)]
/// What `gc` decided and did.
pub struct GcReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// Keep or forget for every snapshot, with reasons.
    pub plan: Plan,
    /// Snapshots forgotten.
    pub forgotten: usize,
    /// Snapshots kept.
    pub kept: usize,
    /// Chunks the kept snapshots need (delta bases included).
    pub live_chunks: u64,
    /// Packs deleted whole.
    pub packs_deleted: u64,
    /// Packs whose live entries were copied into new packs.
    pub packs_repacked: u64,
    /// New packs written by the repack.
    pub packs_written: u64,
    /// Pack bytes before minus pack bytes after.
    pub bytes_freed: u64,
    /// Wall time.
    pub duration_ms: u64,
    /// The fate of every pack that changes (`repack` or `delete`), by id.
    pub packs: Vec<(String, Fate)>,
    /// Packs whose header could not be read; left untouched.
    pub bad_packs: Vec<String>,
    /// Snapshot records that are corrupt; neither kept nor forgotten.
    pub bad_records: Vec<String>,
}

/// Forgets the snapshots `opts.policy` does not keep and frees what no kept
/// snapshot needs, through a plan that is checked before anything changes.
///
/// ```no_run
/// use snap::gc::{gc, GcOptions};
/// use snap::retention::Policy;
/// let store = snap::Store::open("/var/backups/snap")?;
/// let policy = Policy { keep_within: Some("30d".into()), ..Default::default() };
/// let report = gc(&store, &GcOptions { policy, ..Default::default() })?;
/// println!("{} forgotten, {} bytes freed", report.forgotten, report.bytes_freed);
/// # Ok::<(), snap::Error>(())
/// ```
pub fn gc(store: &Store, opts: &GcOptions) -> Result<GcReport> {
    let start = Instant::now();
    let lock = store.lock_all("gc", opts.lock_wait.0)?;
    let mut index = store.open_index(&lock)?;
    let (plan, kept, bad_records) = plan_store(store, opts)?;
    let mut report = GcReport {
        dry_run: opts.dry_run,
        forgotten: plan.forget().count(),
        kept: plan.keep().count(),
        bad_records,
        ..Default::default()
    };
    // If any kept snapshot cannot be read completely, gc stops having
    // changed nothing. A damaged index row can be the cause: the index is a
    // cache, so it is rebuilt from the packs once and the mark retried.
    let progress = store.progress();
    progress.start_items("gc: mark", Some(kept.len() as u64));
    let live = match mark(&StoreReader::new(store, &index)?, kept.iter()) {
        Ok(live) => live,
        Err(Error::Corrupt { .. }) if !opts.dry_run => {
            drop(index);
            packs::rebuild_index(store)?;
            index = store.open_index(&lock)?;
            mark(&StoreReader::new(store, &index)?, kept.iter())?
        }
        Err(e) => return Err(e),
    };
    let reader = StoreReader::new(store, &index)?;
    let packs = read_headers(store, &mut report)?;
    progress.finish();
    let pack_plan = plan::plan_packs(
        &packs,
        live,
        |id| reader.index.get(id).ok().flatten(),
        |deltas| execute::delta_bases(&reader.packs, deltas),
        opts.repack_threshold,
    )?;
    plan::check(&pack_plan)?;
    report.plan = plan;
    describe(&pack_plan, &mut report);
    if opts.dry_run {
        report.bytes_freed = pack_plan.bytes_freed();
        report.duration_ms = start.elapsed().as_millis() as u64;
        return Ok(report);
    }
    let before: u64 = packs.iter().map(|p| p.size).sum();
    execute::forget(store, &index, &report.plan)?;
    let repack_bytes: u64 = pack_plan
        .with_fate(Fate::Repack)
        .map(|p| pack_plan.live_bytes.get(&p).copied().unwrap_or(0))
        .sum();
    progress.start("gc: repack", Some(repack_bytes));
    let written = execute::run(store, &index, &reader, &pack_plan)?;
    progress.finish();
    report.packs_written = written.len() as u64;
    let after = before + written.iter().sum::<u64>()
        - pack_plan
            .fates
            .iter()
            .filter(|(_, _, f)| *f != Fate::Keep)
            .map(|(_, s, _)| s)
            .sum::<u64>();
    report.bytes_freed = before.saturating_sub(after);
    // gc's commits leave the file up to twice its size (see `take`). The
    // index is a cache and the gc is done: a failed compaction costs bytes.
    drop(reader);
    let _ = index.compact();
    report.duration_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

pub(crate) fn describe(plan: &PackPlan, report: &mut GcReport) {
    report.live_chunks = plan.live.len() as u64;
    report.packs_deleted = plan.with_fate(Fate::Delete).count() as u64;
    report.packs_repacked = plan.with_fate(Fate::Repack).count() as u64;
    report.packs = plan
        .fates
        .iter()
        .filter(|(_, _, f)| *f != Fate::Keep)
        .map(|(p, _, f)| (p.to_hex(), *f))
        .collect();
}

/// Every pack's header (the truth the plan is made from). A pack whose
/// header cannot be read is reported and left alone.
fn read_headers(store: &Store, report: &mut GcReport) -> Result<Vec<PackInfo>> {
    let mut out = Vec::new();
    for (id, path) in store.pack_files()? {
        match packs::read_header(&path) {
            Ok(entries) => out.push(PackInfo {
                id,
                size: fs::metadata(&path).map_err(Error::io("stat", &path))?.len(),
                entries,
            }),
            Err(e) => report.bad_packs.push(format!("{}: {e}", path.display())),
        }
    }
    Ok(out)
}

/// The retention plan for a store's snapshots, the snapshots it keeps, and
/// the corrupt records (left out of the plan, named).
pub fn plan_store(
    store: &Store,
    opts: &GcOptions,
) -> Result<(Plan, Vec<crate::Snapshot>, Vec<String>)> {
    let (snapshots, bad) = store.snapshots_checked()?;
    let candidates: Vec<Candidate> = snapshots
        .iter()
        .map(|(id, s)| Candidate {
            id: id.to_hex(),
            time: s.time,
            host: s.host.clone(),
            paths: s.paths.clone(),
            tags: s.tags.clone(),
            point: s.point.is_some(),
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
    Ok((plan, kept, bad))
}

/// Packs to delete once the index no longer names them: `doomed` minus every
/// pack the committed index names.
pub(crate) fn deletable(index: &Index, doomed: &[PackId]) -> Result<Vec<PackId>> {
    let named = index.pack_ids()?;
    Ok(doomed
        .iter()
        .filter(|p| !named.contains(p))
        .copied()
        .collect())
}
