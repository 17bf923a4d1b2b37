//! gc: the store's facts (records, mark, pack headers) -> retention plan
//! -> pack plan -> check -> the store's sweep. gc calls the store twice
//! (`Repository::facts`, `Repository::sweep`); the plans are its own.
//!
//! Runs under the exclusive store lock, so no `take` runs meanwhile: a take
//! either finished before gc started (its snapshot is marked like any other)
//! or starts after gc finished (it deduplicates against what gc kept). See
//! DESIGN.md "Concurrency".
//!
//! Nothing is changed until the whole plan is computed from the pack headers
//! and checked (`plan::check`). The sweep's order, each step durable before
//! the next: forgotten records deleted; repacked entries written to new packs,
//! each re-read and checked against its name; one index commit naming exactly
//! the live chunks at their final places; only then are old pack files
//! deleted, and never one the new index names (a repack can produce a pack
//! with the very name of one planned for deletion: identity, not name, decides).

pub mod plan;

pub use crate::store::{Fate, PackInfo, PackPlan};

use crate::error::Result;
use crate::id::SnapshotId;
use crate::retention::{self, Candidate, GroupBy, Plan, Policy};
use crate::store::{Access, Snapshots, Store};
use chrono::{DateTime, FixedOffset};
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
    let mut repo = store.repository(Access::Exclusive, "gc", opts.lock_wait.0)?;
    let mut plan = Plan::default();
    // Call one: the facts. A damaged index row is ruled out by a rebuild
    // (not in a dry run, which changes nothing).
    let mut facts = repo.facts(
        |records| {
            plan = plan_records(records, opts)?;
            Ok(kept_ids(&plan))
        },
        None,
        !opts.dry_run,
    )?;
    let pack_plan = plan::plan_packs(
        &facts.packs,
        std::mem::take(&mut facts.live),
        |id| facts.indexed(id),
        |deltas| facts.delta_bases(deltas),
        opts.repack_threshold,
    )?;
    plan::check(&pack_plan)?;
    let mut report = GcReport {
        dry_run: opts.dry_run,
        forgotten: plan.forget().count(),
        kept: plan.keep().count(),
        bad_records: facts.bad_records.clone(),
        bad_packs: facts.bad_packs.clone(),
        ..Default::default()
    };
    let before: u64 = facts.packs.iter().map(|p| p.size).sum();
    drop(facts);
    describe(&pack_plan, &mut report);
    let forget = forgotten_ids(&plan);
    report.plan = plan;
    if opts.dry_run {
        report.bytes_freed = pack_plan.bytes_freed();
        report.duration_ms = start.elapsed().as_millis() as u64;
        return Ok(report);
    }
    // Call two: the execution.
    let written = repo.sweep(&forget, &pack_plan)?;
    report.packs_written = written.len() as u64;
    let gone: u64 = pack_plan
        .fates
        .iter()
        .filter(|(_, _, f)| *f != Fate::Keep)
        .map(|(_, s, _)| s)
        .sum();
    let after = before + written.iter().sum::<u64>() - gone;
    report.bytes_freed = before.saturating_sub(after);
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

/// The retention plan for a store's (readable) snapshot records.
pub(crate) fn plan_records(records: &Snapshots, opts: &GcOptions) -> Result<Plan> {
    let candidates: Vec<Candidate> = records
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
    retention::plan(
        &opts.policy,
        &candidates,
        opts.group_by,
        now,
        &chrono::Local,
    )
}

/// The snapshots a retention plan keeps.
pub(crate) fn kept_ids(plan: &Plan) -> Vec<SnapshotId> {
    let ids = plan.keep().map(|d| SnapshotId::from_hex(&d.id));
    ids.map(|id| id.expect("plans are made of store ids"))
        .collect()
}

/// The snapshots a retention plan forgets.
pub(crate) fn forgotten_ids(plan: &Plan) -> Vec<SnapshotId> {
    let ids = plan.forget().map(|d| SnapshotId::from_hex(&d.id));
    ids.map(|id| id.expect("plans are made of store ids"))
        .collect()
}
