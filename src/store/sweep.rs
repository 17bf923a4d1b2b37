//! gc's two calls into the store. `Repository::facts`: what a pack plan is
//! made from (the records, the chunks the kept snapshots reach, every
//! pack's header). `Repository::sweep`: the execution of a checked plan
//! (records forgotten, entries repacked, one index commit, dead packs
//! deleted), each step durable before the next, so a crash (or a power
//! cut) between any two leaves every kept snapshot restorable: DESIGN.md
//! "gc", the crash table. The plan itself (which copy survives, which pack
//! goes) is computed and checked by `gc::plan`, apart from any I/O.

use super::packer::{Packer, SealedPack};
use super::packs::{decode_named, read_header};
use super::{Location, Repository, Snapshots, StoreReader};
use crate::durable;
use crate::error::{Error, Result};
use crate::format::entry::bases_of;
use crate::format::pack::{self, PackEntry};
use crate::format::record::Snapshot;
use crate::id::{ChunkId, PackId, SnapshotId};
use std::collections::{HashMap, HashSet};

/// One pack as its header describes it.
#[derive(Clone, Debug)]
pub struct PackInfo {
    /// The pack.
    pub id: PackId,
    /// Its size in bytes.
    pub size: u64,
    /// Its header's entries.
    pub entries: Vec<PackEntry>,
}

/// What happens to one pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fate {
    /// Kept as it is.
    Keep,
    /// Its chosen entries are copied into new packs, then it is deleted.
    Repack,
    /// No chosen entry: deleted.
    Delete,
}

/// Which copy of every live chunk survives, and each pack's fate.
#[derive(Debug, Default)]
pub struct PackPlan {
    /// Every chunk that must stay readable: marked ones and their bases.
    pub live: HashSet<ChunkId>,
    /// Where each live chunk is read from (before any repack).
    pub chosen: HashMap<ChunkId, Location>,
    /// Each chosen delta's bases.
    pub bases: HashMap<ChunkId, Vec<ChunkId>>,
    /// Every pack with its size and fate.
    pub fates: Vec<(PackId, u64, Fate)>,
    /// Bytes of chosen entries per pack.
    pub live_bytes: HashMap<PackId, u64>,
}

impl PackPlan {
    /// The packs with this fate.
    pub(crate) fn with_fate(&self, fate: Fate) -> impl Iterator<Item = PackId> + '_ {
        self.fates
            .iter()
            .filter(move |(_, _, f)| *f == fate)
            .map(|(p, _, _)| *p)
    }

    /// The chosen entries of every pack to repack, each in pack order.
    pub(crate) fn to_repack(&self) -> Vec<(PackId, Vec<Location>)> {
        let repack: HashSet<PackId> = self.with_fate(Fate::Repack).collect();
        let mut by_pack: HashMap<PackId, Vec<Location>> = HashMap::new();
        for l in self.chosen.values().filter(|l| repack.contains(&l.pack)) {
            by_pack.entry(l.pack).or_default().push(l.clone());
        }
        let mut out: Vec<(PackId, Vec<Location>)> = by_pack.into_iter().collect();
        for (_, locs) in &mut out {
            locs.sort_by_key(|l| l.entry.offset);
        }
        out.sort_by_key(|(p, _)| *p);
        out
    }

    /// Pack bytes freed: deleted packs whole, repacked ones but their live bytes.
    pub fn bytes_freed(&self) -> u64 {
        self.fates
            .iter()
            .map(|(p, size, fate)| match fate {
                Fate::Keep => 0,
                Fate::Delete => *size,
                Fate::Repack => size.saturating_sub(self.live_bytes.get(p).copied().unwrap_or(0)),
            })
            .sum()
    }

    /// The packs that go (deleted, or repacked then deleted).
    fn doomed(&self) -> Vec<PackId> {
        let gone = self.fates.iter().filter(|(_, _, f)| *f != Fate::Keep);
        gone.map(|(p, _, _)| *p).collect()
    }
}

/// What a pack plan is made from, read under the exclusive lock.
pub struct Facts<'r> {
    /// The chunks the kept snapshots reach (their bases are added by the
    /// plan, from the pack headers).
    pub live: HashSet<ChunkId>,
    /// Every pack's header: the truth the plan is made from.
    pub packs: Vec<PackInfo>,
    /// Packs whose header could not be read (left untouched), named with why.
    pub bad_packs: Vec<String>,
    /// Snapshot records that are corrupt (neither kept nor forgotten).
    pub bad_records: Vec<String>,
    reader: &'r StoreReader,
}

impl Facts<'_> {
    /// The index's row for a chunk (the plan prefers the copy it names).
    pub fn indexed(&self, id: &ChunkId) -> Option<Location> {
        self.reader.index.get(id).ok().flatten()
    }

    /// The base ids of each delta entry (reads coalesced: deltas of one
    /// pack sit side by side).
    pub(crate) fn delta_bases(&self, deltas: &[Location]) -> Result<Vec<Vec<ChunkId>>> {
        let stored = self.reader.packs.read_stored_many(deltas);
        deltas
            .iter()
            .zip(stored)
            .map(|(l, stored)| {
                bases_of(l.entry.kind, &stored?).ok_or_else(|| {
                    Error::corrupt(
                        format!("chunk {} in pack {}", l.entry.id, l.pack),
                        "delta without base",
                    )
                })
            })
            .collect()
    }
}

impl Repository {
    /// The facts of a gc (see the module doc). `keep` chooses, from the
    /// readable records, those whose chunks stay. A kept snapshot that
    /// cannot be read completely stops gc; when `repair`, a damaged index
    /// row is first ruled out by rebuilding the index (a cache) once and
    /// marking again. `packs`: the headers to plan from when they are not
    /// this store's pack files (a remote view's listing).
    pub(crate) fn facts(
        &mut self,
        keep: impl FnOnce(&Snapshots) -> Result<Vec<SnapshotId>>,
        packs: Option<Vec<PackInfo>>,
        repair: bool,
    ) -> Result<Facts<'_>> {
        let (snapshots, bad_records) = self.store().snapshots_checked()?;
        let keep: HashSet<SnapshotId> = keep(&snapshots)?.into_iter().collect();
        let kept: Vec<&Snapshot> = snapshots
            .iter()
            .filter(|(id, _)| keep.contains(id))
            .map(|(_, s)| s)
            .collect();
        let progress = self.store().progress().clone();
        progress.start_items("gc: mark", Some(kept.len() as u64));
        let live = match self.reachable(kept.iter().copied()) {
            Ok(live) => live,
            Err(Error::Corrupt { .. }) if repair => {
                self.rebuild_index()?;
                self.reachable(kept.iter().copied())?
            }
            Err(e) => return Err(e),
        };
        let (packs, bad_packs) = match packs {
            Some(p) => (p, Vec::new()),
            None => self.pack_headers()?,
        };
        progress.finish();
        Ok(Facts {
            live,
            packs,
            bad_packs,
            bad_records,
            reader: self,
        })
    }

    /// Every local pack's header. A pack whose header cannot be read is
    /// named and left alone.
    fn pack_headers(&self) -> Result<(Vec<PackInfo>, Vec<String>)> {
        let (mut out, mut bad) = (Vec::new(), Vec::new());
        for (id, path) in self.store().pack_files()? {
            match read_header(&path) {
                Ok(entries) => out.push(PackInfo {
                    id,
                    size: std::fs::metadata(&path)
                        .map_err(Error::io("stat", &path))?
                        .len(),
                    entries,
                }),
                Err(e) => bad.push(format!("{}: {e}", path.display())),
            }
        }
        Ok((out, bad))
    }

    /// Executes a plan `gc::plan::check` passed, each step durable before
    /// the next: the records `forget` deleted (so a crash after leaves only
    /// unreferenced chunks); repacked entries written to new packs, each
    /// re-read and checked; one index commit naming exactly the live chunks
    /// at their final places; only then old pack files deleted, and never
    /// one the new index names (a repack can write a pack with the very
    /// name of one planned for deletion: identity, not name, decides).
    /// Returns the sizes of the packs written.
    pub fn sweep(&mut self, forget: &[SnapshotId], plan: &PackPlan) -> Result<Vec<u64>> {
        self.forget(forget)?;
        let progress = self.store().progress().clone();
        let repack_bytes: u64 = plan
            .with_fate(Fate::Repack)
            .map(|p| plan.live_bytes.get(&p).copied().unwrap_or(0))
            .sum();
        progress.start("gc: repack", Some(repack_bytes));
        let sealed = self.repack(plan)?;
        progress.finish();
        let moved = self.moved(plan, &sealed);
        let doomed = plan.doomed();
        let added: Vec<(PackId, u64, u32)> = sealed
            .iter()
            .map(|s| (s.id, s.size, s.entries.len() as u32))
            .collect();
        self.index().apply_gc(&plan.live, &moved, &doomed, &added)?;
        let named = self.index().pack_ids()?;
        for p in doomed.iter().filter(|p| !named.contains(p)) {
            let path = self.store().pack_path(p);
            durable::remove_file(&path)?;
            durable::fsync_dir(path.parent().expect("packs/xx"))?;
        }
        // gc's commits leave the file up to twice its size (see `take`).
        let _ = self.compact();
        Ok(sealed.iter().map(|s| s.size).collect())
    }

    /// Index rows after a sweep: live chunks only, each at its final place.
    fn moved(&self, plan: &PackPlan, sealed: &[SealedPack]) -> Vec<Location> {
        let mut moved: Vec<Location> = Vec::new();
        let mut relocated = HashSet::new();
        for s in sealed {
            for e in &s.entries {
                relocated.insert(e.id);
                let entry = e.clone();
                moved.push(Location { pack: s.id, entry });
            }
        }
        for (id, loc) in &plan.chosen {
            if !relocated.contains(id) && self.index.get(id).ok().flatten().as_ref() != Some(loc) {
                moved.push(loc.clone());
            }
        }
        moved
    }

    /// Copies the chosen entries of every pack to repack into new packs,
    /// byte for byte (deltas keep their base), each verified on the way in
    /// and each new pack re-read whole and checked against its name and
    /// header. Returns the new packs.
    pub(crate) fn repack(&self, plan: &PackPlan) -> Result<Vec<SealedPack>> {
        let mut packer = Packer::new(self.store());
        let mut sealed = Vec::new();
        for (_, locs) in plan.to_repack() {
            let stored = self.packs.read_stored_many(&locs);
            let mut batch = Vec::with_capacity(locs.len());
            for (loc, bytes) in locs.into_iter().zip(stored) {
                let bytes = bytes?;
                let ids = super::chain::bases_named(&loc, &bytes)?;
                let plains = ids
                    .iter()
                    .map(|b| Ok((*b, self.plain(plan, b)?)))
                    .collect::<Result<HashMap<_, _>>>()?;
                let dict = super::chain::dictionary(&loc, &ids, |b| plains.get(b))?;
                // Verify while copying: gc never spreads a corrupt entry.
                decode_named(&loc, &bytes, dict.as_deref())?;
                self.store().progress().advance(bytes.len() as u64);
                batch.push((loc.entry, bytes));
            }
            sealed.extend(packer.add_stored(batch)?);
        }
        sealed.extend(packer.finish()?);
        for s in &sealed {
            self.check_written(s)?;
        }
        Ok(sealed)
    }

    /// A chunk's plain bytes from its chosen copy, through the chosen
    /// copies down its chain (`check` proved the chain ends in a full copy).
    fn plain(&self, plan: &PackPlan, id: &ChunkId) -> Result<Vec<u8>> {
        let chosen = |b: &ChunkId| {
            plan.chosen.get(b).cloned().ok_or_else(|| {
                Error::corrupt(format!("chunk {b}"), "a base the gc plan did not choose")
            })
        };
        let chain = super::chain::closure(chosen(id)?, chosen, |l| self.packs.read_stored(l))?;
        super::chain::decode_chain(&chain)
    }

    /// A new pack is read back whole: its bytes hash to its name and its
    /// header lists exactly what was written.
    fn check_written(&self, sealed: &SealedPack) -> Result<()> {
        let bytes = self.store().read_pack(&sealed.id)?;
        if PackId::of(&bytes) != sealed.id || pack::decode_pack(&bytes)? != sealed.entries {
            return Err(Error::corrupt(
                format!("pack {}", sealed.id),
                "a repacked pack does not read back as written; no old pack was deleted",
            ));
        }
        Ok(())
    }
}
