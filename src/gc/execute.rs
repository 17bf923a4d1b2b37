//! Executing a checked gc plan. Each step is durable before the next starts,
//! so a crash (or a power cut) between any two leaves every kept snapshot
//! restorable: see DESIGN.md "gc", the crash table.

use super::plan::{Fate, PackPlan};
use crate::error::{Error, Result};
use crate::format::entry::delta_base;
use crate::format::pack::{self, EntryKind};
use crate::id::{ChunkId, PackId, SnapshotId};
use crate::packer::{Packer, SealedPack};
use crate::retention::Plan;
use crate::store::packs::{decode_named, PackReader};
use crate::store::reader::decode_chain;
use crate::store::{durable, Index, Location, Store, StoreReader};
use std::collections::HashSet;

/// The base id of each delta entry (reads coalesced: deltas of one pack sit
/// side by side).
pub fn delta_bases(packs: &PackReader, deltas: &[Location]) -> Result<Vec<ChunkId>> {
    deltas
        .iter()
        .zip(packs.read_stored_many(deltas))
        .map(|(l, stored)| {
            delta_base(&stored?).ok_or_else(|| {
                Error::corrupt(
                    format!("chunk {} in pack {}", l.entry.id, l.pack),
                    "delta without base",
                )
            })
        })
        .collect()
}

/// Deletes the records the retention plan forgets; durable before any pack
/// is touched, so a crash after this leaves only unreferenced chunks.
pub(crate) fn forget(store: &Store, index: &Index, plan: &Plan) -> Result<()> {
    for d in plan.forget() {
        let id = SnapshotId::from_hex(&d.id).expect("ids come from the store");
        durable::remove_file(&store.snapshot_path(&id))?;
        index.remove_snapshot(&id)?;
    }
    durable::fsync_dir(&store.root().join("snapshots"))
}

/// Repacks, commits the index, deletes. Returns the sizes of packs written.
pub(crate) fn run(
    store: &Store,
    index: &Index,
    reader: &StoreReader,
    plan: &PackPlan,
) -> Result<Vec<u64>> {
    let sealed = repack(store, reader, plan)?;
    // Index rows: live chunks only, each at its final place.
    let mut moved: Vec<Location> = Vec::new();
    let mut relocated = HashSet::new();
    for s in &sealed {
        for e in &s.entries {
            relocated.insert(e.id);
            moved.push(Location {
                pack: s.id,
                entry: e.clone(),
            });
        }
    }
    for (id, loc) in &plan.chosen {
        if !relocated.contains(id) && reader.index.get(id).ok().flatten().as_ref() != Some(loc) {
            moved.push(loc.clone());
        }
    }
    let doomed: Vec<PackId> = plan
        .fates
        .iter()
        .filter(|(_, _, f)| *f != Fate::Keep)
        .map(|(p, _, _)| *p)
        .collect();
    let added: Vec<(PackId, u64, u32)> = sealed
        .iter()
        .map(|s| (s.id, s.size, s.entries.len() as u32))
        .collect();
    index.apply_gc(&plan.live, &moved, &doomed, &added)?;
    for p in super::deletable(index, &doomed)? {
        let path = store.pack_path(&p);
        durable::remove_file(&path)?;
        durable::fsync_dir(path.parent().expect("packs/xx"))?;
    }
    Ok(sealed.iter().map(|s| s.size).collect())
}

/// Copies the chosen entries of every pack to repack into new packs, byte
/// for byte (deltas keep their base), each verified on the way in and each
/// new pack re-read whole and checked against its name and header.
pub(crate) fn repack(
    store: &Store,
    reader: &StoreReader,
    plan: &PackPlan,
) -> Result<Vec<SealedPack>> {
    let mut packer = Packer::new(store);
    let mut sealed = Vec::new();
    for (_, locs) in plan.to_repack() {
        let stored = reader.packs.read_stored_many(&locs);
        let mut batch = Vec::with_capacity(locs.len());
        for (loc, bytes) in locs.into_iter().zip(stored) {
            let bytes = bytes?;
            let base = match loc.entry.kind {
                EntryKind::Delta => Some(plain(reader, plan, &plan.bases[&loc.entry.id])?),
                _ => None,
            };
            // Verify while copying: gc never spreads a corrupt entry.
            decode_named(&loc, &bytes, base.as_deref())?;
            store.progress().advance(bytes.len() as u64);
            batch.push((loc.entry, bytes));
        }
        sealed.extend(packer.add_stored(batch)?);
    }
    sealed.extend(packer.finish()?);
    for s in &sealed {
        check_written(store, s)?;
    }
    Ok(sealed)
}

/// A chunk's plain bytes from its chosen copy, through the chosen copies
/// down its chain (`check` proved the chain ends in a full copy).
fn plain(reader: &StoreReader, plan: &PackPlan, id: &ChunkId) -> Result<Vec<u8>> {
    let mut chain = Vec::new();
    let mut at = *id;
    loop {
        let loc = &plan.chosen[&at];
        chain.push((loc.clone(), reader.packs.read_stored(loc)?));
        if loc.entry.kind != EntryKind::Delta {
            return decode_chain(&chain);
        }
        at = plan.bases[&at];
    }
}

/// A new pack is read back whole: its bytes hash to its name and its header
/// lists exactly what was written.
fn check_written(store: &Store, sealed: &SealedPack) -> Result<()> {
    let path = store.pack_path(&sealed.id);
    let bytes = std::fs::read(&path).map_err(Error::io("read back pack", &path))?;
    if PackId::of(&bytes) != sealed.id || pack::decode_pack(&bytes)? != sealed.entries {
        return Err(Error::corrupt(
            format!("pack {}", sealed.id),
            "a repacked pack does not read back as written; no old pack was deleted",
        ));
    }
    Ok(())
}
