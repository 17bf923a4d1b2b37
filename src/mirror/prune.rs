//! Remote retention: a policy applied to the remote's own records, then the
//! same mark, pack plan and check as local gc, with repacking. Run by a
//! trusted identity (the private key, and list, read and delete permission).

use super::layout::{self, pack_key, record_key};
use super::pull::{view, Opened};
use super::Remote;
use crate::error::{Error, Result};
use crate::gc::{plan, GcOptions, GcReport};
use crate::id::{ChunkId, PackId, SnapshotId};
use crate::retention::Plan;
use crate::store::{Access, Fate, Location, PackInfo, PackPlan, Repository};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

/// Applies a policy to the remote. Order, each step done before the next:
/// packs are listed (by the view) before holds are read, so a pack a mirror
/// created is either unlisted (left alone) or held by the hold that mirror
/// created first; new packs are created; forgotten records deleted; then
/// dead packs deleted by name, never one just created. A crash leaves at
/// most unneeded packs. `local` is locked meanwhile, so no mirror of it runs.
pub fn gc_remote(
    remote: Arc<Remote>,
    opened: &Opened,
    local: Option<&crate::store::Store>,
    opts: &GcOptions,
) -> Result<GcReport> {
    let start = Instant::now();
    let _lock = local
        .map(|s| s.lock("remote gc", opts.lock_wait.0))
        .transpose()?;
    // No mirror of `local` to this remote runs meanwhile.
    let _state = local
        .map(|s| super::state::lock(s, &remote.url, "remote gc", opts.lock_wait.0))
        .transpose()?;
    let codec = &opened.codec;
    let dir = tempfile::tempdir().map_err(Error::io("create temporary directory", "/tmp"))?;
    let (view, packs) = view(remote.clone(), opened, &dir.path().join("view"), local)?;
    let (held, holds) = read_holds(&remote, opened)?;
    // A chunk a held pack has is kept there (that pack stays anyway), so
    // other copies of it can go.
    let in_held = chunks_in(&packs, &held);
    let mut repo = view.repository(Access::Exclusive, "remote gc", opts.lock_wait.0)?;
    let mut plan = Plan::default();
    let mut facts = repo.facts(
        |records| {
            plan = crate::gc::plan_records(records, opts)?;
            Ok(crate::gc::kept_ids(&plan))
        },
        Some(packs),
        false,
    )?;
    let mut pack_plan = plan::plan_packs(
        &facts.packs,
        std::mem::take(&mut facts.live),
        |id| in_held.get(id).cloned().or_else(|| facts.indexed(id)),
        |deltas| facts.delta_bases(deltas),
        opts.repack_threshold,
    )?;
    let bad_records = facts.bad_records.clone();
    drop(facts);
    // A pack a mirroring store still holds stays whole: a future record may name it.
    for (p, _, fate) in pack_plan.fates.iter_mut() {
        if held.contains(p) {
            *fate = Fate::Keep;
        }
    }
    plan::check(&pack_plan)?;
    let mut report = GcReport {
        dry_run: opts.dry_run,
        forgotten: plan.forget().count(),
        kept: plan.keep().count(),
        bytes_freed: pack_plan.bytes_freed(),
        bad_records,
        ..Default::default()
    };
    crate::gc::describe(&pack_plan, &mut report);
    report.plan = plan;
    if !opts.dry_run {
        report.packs_written = execute_remote(&remote, codec, &repo, &pack_plan, &report, &holds)?;
    }
    report.duration_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

/// Where each chunk of the packs in `held` lies.
fn chunks_in(packs: &[PackInfo], held: &HashSet<PackId>) -> HashMap<ChunkId, Location> {
    let held = packs.iter().filter(|p| held.contains(&p.id));
    held.flat_map(|p| {
        p.entries.iter().map(|e| {
            let entry = e.clone();
            (e.id, Location { pack: p.id, entry })
        })
    })
    .collect()
}

/// Carries out a checked plan on the remote, in the order `gc_remote`
/// states: repacked packs created, forgotten records deleted (batches
/// rewritten), dead packs deleted (never one just created), superseded
/// holds deleted. Returns the packs written.
fn execute_remote(
    remote: &Remote,
    codec: &super::crypt::Codec,
    view: &Repository,
    pack_plan: &PackPlan,
    report: &GcReport,
    holds: &[String],
) -> Result<u64> {
    let written = view.repack(pack_plan)?;
    let mut created = HashSet::new();
    for s in &written {
        let bytes = view.store().read_pack(&s.id)?;
        let name = PackId(codec.name(&s.id.0));
        remote.put_new(&pack_key(&name), codec.seal(&bytes)?)?;
        created.insert(name);
    }
    let forgotten: HashSet<SnapshotId> = report
        .plan
        .forget()
        .map(|d| SnapshotId::from_hex(&d.id).expect("ids from the remote"))
        .collect();
    let records = forgotten.iter().flat_map(|id| codec.names(&id.0));
    remote.delete_many(records.map(|n| record_key(&n, codec.sealed())).collect())?;
    forget_in_batches(remote, codec, &forgotten)?;
    let dead = pack_plan.fates.iter().filter(|(_, _, f)| *f != Fate::Keep);
    let dead = dead.filter(|(p, _, _)| !created.contains(p));
    remote.delete_many(dead.map(|(p, _, _)| pack_key(p)).collect())?;
    // Superseded holds: the newest (with the holds it adds to) names every
    // pack its store still holds.
    remote.delete_many(holds.to_vec())?;
    Ok(written.len() as u64)
}

/// Rewrites each batch that holds a forgotten record: a batch of the others
/// is created first, then the old one deleted (a crash between leaves a
/// record in two batches, read as one).
fn forget_in_batches(
    remote: &Remote,
    codec: &super::crypt::Codec,
    gone: &HashSet<SnapshotId>,
) -> Result<()> {
    if gone.is_empty() {
        return Ok(());
    }
    for (key, records) in super::records::remote_batches(remote, codec)? {
        let keep: Vec<&[u8]> = records
            .iter()
            .filter(|r| !gone.contains(&SnapshotId::of(r)))
            .map(Vec::as_slice)
            .collect();
        if keep.len() == records.len() {
            continue;
        }
        if !keep.is_empty() {
            let plain = layout::encode_batch(&keep);
            let name = codec.name(&SnapshotId::of(&plain).0);
            remote.put_new(
                &layout::batch_key(&name, codec.sealed()),
                codec.seal(&plain)?,
            )?;
        }
        remote.delete(&key)?;
    }
    Ok(())
}

/// Every pack named by each writer's newest hold on the remote (and the
/// holds it adds to, back to a full one), and the other holds' keys
/// (superseded). The newest is enough: a future record of a store names
/// only packs it holds then, which are in its newest hold's chain or were
/// created after it (and so were not listed by this gc; see `gc_remote`).
/// Each writer (a store's state of this remote) has its own chain, so two
/// stores mirroring into one prefix keep each other's packs.
fn read_holds(remote: &Remote, opened: &Opened) -> Result<(HashSet<PackId>, Vec<String>)> {
    let mut listed = remote.list(layout::HOLDS)?;
    listed.sort();
    // Every hold at once: a chain of a ship's holds is hundreds long.
    let reads = remote.read_ranges(listed.iter().map(|(k, n)| (k.clone(), 0, *n)).collect());
    let mut holds = HashMap::new();
    for ((key, _), read) in listed.iter().zip(reads) {
        let plain = opened.codec.open(key, &read?)?;
        let hold: layout::Hold = serde_json::from_slice(&plain)
            .map_err(|e| Error::corrupt(format!("remote object {key}"), e.to_string()))?;
        holds.insert(key.clone(), hold);
    }
    let keys: Vec<String> = listed.into_iter().map(|(k, _)| k).collect();
    let mut newest: HashMap<&str, &String> = HashMap::new();
    for key in &keys {
        newest.insert(layout::hold_writer(key), key);
    }
    // Holds of a snap older than writer ids form one chain; once a store
    // writes tagged holds after them (an upgrade), its chain replaces it.
    if let Some(legacy) = newest.get("").copied() {
        if newest.iter().any(|(w, k)| !w.is_empty() && *k > legacy) {
            newest.remove("");
        }
    }
    let mut held = HashSet::new();
    let mut chain = HashSet::new();
    for key in newest.into_values() {
        read_chain(remote, &holds, key.clone(), &mut chain, &mut held)?;
    }
    let superseded = keys.into_iter().filter(|k| !chain.contains(k)).collect();
    Ok((held, superseded))
}

/// Adds the packs named by hold `key` and the holds it adds to, back to a
/// full one, to `held`, and their keys to `chain`.
fn read_chain(
    remote: &Remote,
    holds: &HashMap<String, layout::Hold>,
    key: String,
    chain: &mut HashSet<String>,
    held: &mut HashSet<PackId>,
) -> Result<()> {
    let mut next = Some(key);
    while let Some(key) = next.take() {
        if !chain.insert(key.clone()) {
            return Err(Error::corrupt(
                format!("remote object {key}"),
                "holds in a cycle",
            ));
        }
        let Some(hold) = holds.get(&key) else {
            // Nothing is deleted on a guess: the next mirror writes a full hold.
            return Err(Error::Invalid(format!(
                "the holds on {} add to a missing {key}: mirror once with a rescan (it writes a full hold), then gc again",
                remote.url
            )));
        };
        let names = match hold {
            layout::Hold::Full(names) => names,
            layout::Hold::Since { base, names } => {
                next = Some(base.clone());
                names
            }
        };
        for n in names {
            let mut b = [0u8; 32];
            hex::decode_to_slice(n, &mut b)
                .map_err(|_| Error::corrupt(format!("remote object {key}"), "a bad pack name"))?;
            held.insert(PackId(b));
        }
    }
    Ok(())
}
