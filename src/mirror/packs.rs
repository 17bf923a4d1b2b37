//! The packs a mirror sends: planned (alone, or small ones together in
//! bundles whose ids are known before anything is created, so the hold can
//! name them), then sent, each checked against its id before it is sealed.

use super::crypt::Codec;
use super::layout::pack_key;
use super::state::State;
use super::{check_pack, MirrorReport, Remote};
use crate::error::{Error, Result};
use crate::format::bundle::{self, Member};
use crate::id::PackId;
use crate::store::Store;
use std::collections::HashSet;

/// The packs a mirror sends: alone, or together in bundles whose ids are
/// known before anything is created (the hold names them first).
#[derive(Default)]
pub(super) struct PackPlan {
    alone: Vec<(String, (PackId, u64))>,
    bundles: Vec<Bundle>,
    /// Packs that cannot be sent (damaged here).
    pub failed: HashSet<PackId>,
    /// Every pack the store held when it was planned (the hold names them).
    pub(super) held: Vec<PackId>,
    total: u64,
}

/// A bundle to send: its id and its packs, in order.
struct Bundle {
    id: PackId,
    packs: Vec<(PackId, u64)>,
}

impl PackPlan {
    /// Every local pack it sends (alone or in a bundle).
    pub(super) fn planned(&self) -> impl Iterator<Item = PackId> + '_ {
        let alone = self.alone.iter().map(|(_, (id, _))| *id);
        alone.chain(
            self.bundles
                .iter()
                .flat_map(|b| b.packs.iter().map(|(id, _)| *id)),
        )
    }

    /// The local ids of every object it sends: packs alone, and bundles.
    pub(super) fn objects(&self) -> impl Iterator<Item = PackId> + '_ {
        let alone = self.alone.iter().map(|(_, (id, _))| *id);
        alone.chain(self.bundles.iter().map(|b| b.id))
    }

    /// The bundle pack `id` goes in, if it does.
    pub(super) fn bundle_of(&self, id: &PackId) -> Option<PackId> {
        self.bundles
            .iter()
            .find(|b| b.packs.iter().any(|(p, _)| p == id))
            .map(|b| b.id)
    }
}

/// Plans the packs the state does not list: with `bundle`, small ones
/// (under a quarter of the pack size) in bundles of up to a pack size, each read and checked
/// now (a damaged one is left out and named), the others alone.
pub(super) fn plan_packs(
    store: &Store,
    codec: &Codec,
    state: &State,
    bundle: bool,
    report: &mut MirrorReport,
) -> Result<PackPlan> {
    let max = store.config().pack_size.max(1 << 20);
    let mut plan = PackPlan::default();
    let mut small: Vec<(PackId, u64)> = Vec::new();
    for (id, size) in store.pack_sizes()? {
        plan.held.push(id);
        if state.pack_sent(&id) {
            report.packs_already_there += 1;
            continue;
        }
        plan.total += size;
        match bundle && size < max / 4 {
            true => small.push((id, size)),
            false => plan
                .alone
                .push((pack_key(&PackId(codec.name(&id.0))), (id, size))),
        }
    }
    for group in groups(small, max) {
        let (mut packs, mut read) = (Vec::with_capacity(group.len()), Vec::new());
        for (id, size) in group {
            match read_checked(store, &id) {
                Ok(bytes) => {
                    packs.push((id, size));
                    read.push((id, bytes));
                }
                Err(e) => {
                    report.problems.push(format!("local pack {id}: {e}"));
                    plan.failed.insert(id);
                }
            }
        }
        match packs.as_slice() {
            [] => {}
            [(id, size)] => plan
                .alone
                .push((pack_key(&PackId(codec.name(&id.0))), (*id, *size))),
            _ => {
                let id = PackId::of(&bundle::bundle(&read)?.0);
                plan.bundles.push(Bundle { id, packs });
            }
        }
    }
    Ok(plan)
}

/// Local pack `id`, read and checked against its id.
fn read_checked(store: &Store, id: &PackId) -> Result<Vec<u8>> {
    let bytes = store.read_pack(id)?;
    check_pack(id, &bytes, "local pack")?;
    Ok(bytes)
}

/// The bundle of `packs`, each read (again) and checked.
fn build(store: &Store, packs: &[(PackId, u64)]) -> Result<(Vec<u8>, Vec<Member>)> {
    let read = packs
        .iter()
        .map(|(id, _)| Ok((*id, read_checked(store, id)?)))
        .collect::<Result<Vec<_>>>()?;
    bundle::bundle(&read)
}

/// Small packs in runs of at most `max` bytes together (in pack order).
fn groups(small: Vec<(PackId, u64)>, max: u64) -> Vec<Vec<(PackId, u64)>> {
    let mut out: Vec<Vec<(PackId, u64)>> = Vec::new();
    let mut size = 0;
    for p in small {
        match out.last_mut() {
            Some(g) if size + p.1 <= max => {
                size += p.1;
                g.push(p);
            }
            _ => {
                size = p.1;
                out.push(vec![p]);
            }
        }
    }
    out
}

/// Sends what `plan` names: each bundle built again (its packs read and
/// checked again: one that changed since is an error), sealed and created,
/// then its packs noted with their places; then the packs sent alone.
/// Returns the packs that could not be sent; a remote failure that stopped
/// the rest is an error.
pub(super) fn send(
    store: &Store,
    remote: &Remote,
    codec: &Codec,
    state: &mut State,
    plan: PackPlan,
    report: &mut MirrorReport,
) -> Result<HashSet<PackId>> {
    let bar = store.progress();
    bar.start("mirror", Some(plan.total));
    let mut failed = plan.failed;
    for b in &plan.bundles {
        let (bytes, members) = build(store, &b.packs)?;
        if PackId::of(&bytes) != b.id {
            return Err(Error::corrupt(
                format!("bundle {}", b.id),
                "its packs changed while it was sent",
            ));
        }
        let sealed = codec.seal(&bytes)?;
        let n = sealed.len() as u64;
        if remote.put_new(&pack_key(&PackId(codec.name(&b.id.0))), sealed)? {
            report.packs_uploaded += 1;
            report.bytes_uploaded += n;
        }
        report.packs_bundled += members.len() as u64;
        bar.advance(bytes.len() as u64);
        state.note(members.iter().map(|m| super::state::bundled_line(&b.id, m)))?;
    }
    let prepare = |_key: &str, (id, _): &(PackId, u64)| codec.seal(&read_checked(store, id)?);
    let (results, stopped) = remote.upload(plan.alone, &prepare, bar);
    bar.finish();
    let mut sent = Vec::new();
    for (key, (id, _), result) in results {
        match result {
            Ok(n) => {
                // 0 bytes: the object was there already.
                if n == 0 {
                    report.packs_already_there += 1;
                } else {
                    report.packs_uploaded += 1;
                    report.bytes_uploaded += n;
                }
                sent.push(super::state::pack_line(&id));
            }
            Err(e) => {
                report.problems.push(format!("{key}: {e}"));
                failed.insert(id);
            }
        }
    }
    // What was sent before a remote failure stopped the rest is noted too.
    state.note(sent)?;
    stopped.map_or(Ok(failed), Err)
}
