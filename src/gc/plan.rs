//! The pack plan of a gc: from the live chunks and the pack headers (the
//! truth; the index is only consulted to prefer the copy it already names),
//! decide which copy of every live chunk survives, and which packs are kept,
//! repacked or deleted. Pure apart from `bases`, which reads the base ids of
//! the chosen delta entries. `check` proves the plan safe before anything is
//! executed (restic's PlanPrune, then Execute).
//!
//! Invariants a plan that passes `check` keeps:
//! - every live chunk has exactly one chosen copy, in a pack that is kept or
//!   repacked (never deleted);
//! - every chosen delta's base is live and chosen, and so on down its chain,
//!   which ends in a copy stored in full within `MAX_READ_CHAIN` steps, so
//!   after gc every index row names a chunk that can be decoded.

use crate::error::{Error, Result};
use crate::format::entry::MAX_READ_CHAIN;

use crate::id::{ChunkId, PackId};
use crate::store::{Fate, Location, PackInfo, PackPlan};
use std::collections::{HashMap, HashSet};

/// Plans which copy of each live chunk survives and each pack's fate.
/// `indexed` gives the index's row for a chunk (preferred when it names a
/// real copy); `bases` returns the base id of each delta entry it is given.
/// A live chunk no pack holds stops the plan: gc then changes nothing.
pub(crate) fn plan_packs(
    packs: &[PackInfo],
    live: HashSet<ChunkId>,
    indexed: impl Fn(&ChunkId) -> Option<Location>,
    bases: impl FnMut(&[Location]) -> Result<Vec<Vec<ChunkId>>>,
    repack_threshold: f64,
) -> Result<PackPlan> {
    let mut copies = HashMap::new();
    collect_copies(packs, &live, &mut copies);
    let mut plan = choose_copies(packs, live, &copies, &indexed, bases)?;
    let mut live_bytes: HashMap<PackId, u64> = HashMap::new();
    for l in plan.chosen.values() {
        *live_bytes.entry(l.pack).or_default() += l.entry.length as u64;
    }
    plan.live_bytes = live_bytes.clone();
    for p in packs {
        let total: u64 = p.entries.iter().map(|e| e.length as u64).sum();
        let fate = match live_bytes.get(&p.id) {
            None => Fate::Delete,
            Some(&n) if total > 0 && 1.0 - n as f64 / total as f64 > repack_threshold => {
                Fate::Repack
            }
            Some(_) => Fate::Keep,
        };
        plan.fates.push((p.id, p.size, fate));
    }
    Ok(plan)
}

/// Every copy, in the pack headers, of the chunks in `wanted`.
fn collect_copies(
    packs: &[PackInfo],
    wanted: &HashSet<ChunkId>,
    copies: &mut HashMap<ChunkId, Vec<Location>>,
) {
    for p in packs {
        for e in &p.entries {
            if wanted.contains(&e.id) {
                copies.entry(e.id).or_default().push(Location {
                    pack: p.id,
                    entry: e.clone(),
                });
            }
        }
    }
}

/// One copy per live chunk, then one copy per base of a chosen delta, and
/// so on down each chain of deltas (a base may be a delta too).
fn choose_copies(
    packs: &[PackInfo],
    mut live: HashSet<ChunkId>,
    copies: &HashMap<ChunkId, Vec<Location>>,
    indexed: &impl Fn(&ChunkId) -> Option<Location>,
    mut bases: impl FnMut(&[Location]) -> Result<Vec<Vec<ChunkId>>>,
) -> Result<PackPlan> {
    let mut chosen = HashMap::with_capacity(live.len());
    for id in &live {
        chosen.insert(*id, choose(copies, indexed, id)?);
    }
    let mut base_of = HashMap::new();
    let mut base_copies = HashMap::new();
    let mut deltas: Vec<Location> = chosen
        .values()
        .filter(|l| l.entry.kind.is_delta())
        .cloned()
        .collect();
    // Each round takes one step down every chain; `check` bounds the chains.
    for _ in 0..=MAX_READ_CHAIN {
        if deltas.is_empty() {
            break;
        }
        deltas.sort_by_key(|l| (l.pack, l.entry.offset));
        let base_ids = bases(&deltas)?;
        // Bases that are not live yet: find their copies too.
        let new: HashSet<ChunkId> = base_ids
            .iter()
            .flatten()
            .filter(|b| !live.contains(b))
            .copied()
            .collect();
        collect_copies(packs, &new, &mut base_copies);
        let mut next = Vec::new();
        for (d, ids) in deltas.iter().zip(base_ids) {
            for b in &ids {
                if live.insert(*b) {
                    let l = choose(&base_copies, indexed, b)?;
                    if l.entry.kind.is_delta() {
                        next.push(l.clone());
                    }
                    chosen.insert(*b, l);
                }
            }
            base_of.insert(d.entry.id, ids);
        }
        deltas = next;
    }
    Ok(PackPlan {
        live,
        chosen,
        bases: base_of,
        fates: Vec::with_capacity(packs.len()),
        live_bytes: HashMap::new(),
    })
}

/// The copy of `id` to keep: the one the index names when the packs hold
/// it, else the first.
fn choose(
    copies: &HashMap<ChunkId, Vec<Location>>,
    indexed: &impl Fn(&ChunkId) -> Option<Location>,
    id: &ChunkId,
) -> Result<Location> {
    let candidates = copies.get(id).map(Vec::as_slice).unwrap_or_default();
    indexed(id)
        .filter(|l| candidates.contains(l))
        .or_else(|| candidates.first().cloned())
        .ok_or_else(|| {
            Error::corrupt(
                format!("chunk {id}"),
                "a kept snapshot needs it and no pack has it; gc changed nothing (verify names what is affected)",
            )
        })
}

/// Checks the plan's invariants before anything is executed.
pub fn check(plan: &PackPlan) -> Result<()> {
    let fate: HashMap<PackId, Fate> = plan.fates.iter().map(|(p, _, f)| (*p, *f)).collect();
    let fail = |what: String| {
        Err(Error::corrupt(
            "gc plan",
            format!("{what}; the plan was not executed and nothing was changed"),
        ))
    };
    for id in &plan.live {
        let Some(loc) = plan.chosen.get(id) else {
            return fail(format!("live chunk {id} has no chosen copy"));
        };
        match fate.get(&loc.pack) {
            Some(Fate::Keep) | Some(Fate::Repack) => {}
            _ => return fail(format!("live chunk {id} would be deleted with its pack")),
        }
    }
    // Down the chains: every base live and chosen, every path ending in a
    // chunk stored in full within `MAX_READ_CHAIN` steps.
    let mut readable = HashSet::new();
    for id in &plan.live {
        if let Err(at) = stays_readable(plan, id, 0, &mut readable) {
            return fail(format!("the base of delta {at} would not stay readable"));
        }
    }
    Ok(())
}

/// Whether live chunk `id`, `depth` deltas down, stays readable after the
/// plan (`readable` holds chunks found so); else the delta whose base fails.
fn stays_readable(
    plan: &PackPlan,
    id: &ChunkId,
    depth: usize,
    readable: &mut HashSet<ChunkId>,
) -> std::result::Result<(), ChunkId> {
    if readable.contains(id) {
        return Ok(());
    }
    let loc = plan.chosen.get(id).ok_or(*id)?;
    if loc.entry.kind.is_delta() {
        let bases = plan.bases.get(id).ok_or(*id)?;
        for b in bases {
            if depth >= MAX_READ_CHAIN || !plan.live.contains(b) || !plan.chosen.contains_key(b) {
                return Err(*id);
            }
            stays_readable(plan, b, depth + 1, readable)?;
        }
    }
    readable.insert(*id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::{EntryKind, PackEntry};

    fn entry(id: u8, kind: EntryKind, offset: u64) -> PackEntry {
        PackEntry {
            kind,
            id: ChunkId([id; 32]),
            offset,
            length: 100,
            raw_length: 4096,
        }
    }

    fn pack(n: u8, entries: Vec<PackEntry>) -> PackInfo {
        PackInfo {
            id: PackId([n; 32]),
            size: 1000,
            entries,
        }
    }

    // The story of issue 9, defect 1: page P stored in full (B, pack 1), then
    // as a delta D against B (pack 2), then replaced. A gc keeping only D's
    // snapshot once deleted B's pack and left D's row naming a missing base.
    #[test]
    fn a_kept_delta_keeps_its_base() {
        let packs = vec![
            pack(1, vec![entry(0xB, EntryKind::Zstd, 0)]),
            pack(2, vec![entry(0xD, EntryKind::Delta, 0)]),
        ];
        let live = HashSet::from([ChunkId([0xD; 32])]);
        let plan = plan_packs(
            &packs,
            live,
            |_| None,
            |d| Ok(d.iter().map(|_| vec![ChunkId([0xB; 32])]).collect()),
            0.1,
        )
        .unwrap();
        check(&plan).unwrap();
        assert!(plan.live.contains(&ChunkId([0xB; 32])));
        assert_eq!(plan.with_fate(Fate::Delete).count(), 0);
    }

    // Delta chains: D2 is a delta against D1, a delta against B. Keeping
    // only D2's snapshot keeps the whole chain, in three packs.
    #[test]
    fn a_kept_delta_keeps_its_whole_chain() {
        let packs = vec![
            pack(1, vec![entry(0xB, EntryKind::Zstd, 0)]),
            pack(2, vec![entry(0xD1, EntryKind::Delta, 0)]),
            pack(3, vec![entry(0xD2, EntryKind::Delta, 0)]),
        ];
        let base = |l: &Location| match l.entry.id.0[0] {
            0xD2 => ChunkId([0xD1; 32]),
            _ => ChunkId([0xB; 32]),
        };
        let live = HashSet::from([ChunkId([0xD2; 32])]);
        let plan = plan_packs(
            &packs,
            live,
            |_| None,
            |d| Ok(d.iter().map(|l| vec![base(l)]).collect()),
            0.1,
        )
        .unwrap();
        check(&plan).unwrap();
        for id in [0xB, 0xD1, 0xD2] {
            assert!(plan.live.contains(&ChunkId([id; 32])));
        }
        assert_eq!(plan.with_fate(Fate::Delete).count(), 0);
    }

    // A delta against several bases (content moved from other units): M
    // names B1 and D, D is a delta against B2. Keeping only M keeps all
    // four, and a plan that dropped one of them would not pass `check`.
    #[test]
    fn a_kept_delta_keeps_every_one_of_its_bases() {
        let packs = vec![
            pack(1, vec![entry(0xB1, EntryKind::Zstd, 0)]),
            pack(2, vec![entry(0xB2, EntryKind::Zstd, 0)]),
            pack(3, vec![entry(0xD, EntryKind::Delta, 0)]),
            pack(4, vec![entry(0xAA, EntryKind::Deltas, 0)]),
        ];
        let bases = |l: &Location| match l.entry.id.0[0] {
            0xAA => vec![ChunkId([0xB1; 32]), ChunkId([0xD; 32])],
            _ => vec![ChunkId([0xB2; 32])],
        };
        let live = HashSet::from([ChunkId([0xAA; 32])]);
        let mut plan = plan_packs(
            &packs,
            live,
            |_| None,
            |d| Ok(d.iter().map(bases).collect()),
            0.1,
        )
        .unwrap();
        check(&plan).unwrap();
        for id in [0xB1, 0xB2, 0xD, 0xAA] {
            assert!(plan.live.contains(&ChunkId([id; 32])));
        }
        assert_eq!(plan.with_fate(Fate::Delete).count(), 0);
        plan.live.remove(&ChunkId([0xB2; 32]));
        assert!(check(&plan).is_err());
    }

    #[test]
    fn a_chain_that_never_reaches_a_full_chunk_stops_the_plan() {
        // B is stored only as a delta against itself (or D, a cycle).
        for b_base in [0xB, 0xD] {
            let packs = vec![pack(
                1,
                vec![
                    entry(0xB, EntryKind::Delta, 0),
                    entry(0xD, EntryKind::Delta, 100),
                ],
            )];
            let base = |l: &Location| match l.entry.id.0[0] {
                0xD => ChunkId([0xB; 32]),
                _ => ChunkId([b_base; 32]),
            };
            let live = HashSet::from([ChunkId([0xD; 32])]);
            let r = plan_packs(
                &packs,
                live,
                |_| None,
                |d| Ok(d.iter().map(|l| vec![base(l)]).collect()),
                0.1,
            )
            .and_then(|plan| check(&plan));
            assert!(r.is_err());
        }
    }

    #[test]
    fn the_index_copy_is_preferred_and_a_wrong_row_ignored() {
        let packs = vec![
            pack(1, vec![entry(7, EntryKind::Zstd, 0)]),
            pack(2, vec![entry(7, EntryKind::Zstd, 0)]),
        ];
        let live = HashSet::from([ChunkId([7; 32])]);
        let at = |p: u8| Location {
            pack: PackId([p; 32]),
            entry: entry(7, EntryKind::Zstd, 0),
        };
        let plan = plan_packs(&packs, live.clone(), |_| Some(at(2)), |_| Ok(vec![]), 0.1).unwrap();
        assert_eq!(plan.chosen[&ChunkId([7; 32])].pack, PackId([2; 32]));
        // A row naming a pack that does not hold the chunk (a flipped bit) is not trusted.
        let plan = plan_packs(&packs, live, |_| Some(at(9)), |_| Ok(vec![]), 0.1).unwrap();
        assert_eq!(plan.chosen[&ChunkId([7; 32])].pack, PackId([1; 32]));
        check(&plan).unwrap();
        assert_eq!(
            plan.with_fate(Fate::Delete).collect::<Vec<_>>(),
            [PackId([2; 32])]
        );
    }

    #[test]
    fn a_missing_live_chunk_stops_the_plan() {
        let live = HashSet::from([ChunkId([3; 32])]);
        assert!(plan_packs(&[], live, |_| None, |_| Ok(vec![]), 0.1).is_err());
    }
}
