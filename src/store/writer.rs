//! ChunkWriter: the "index has it?" step of take. New chunks are queued, handed
//! to the packer in batches (so rayon can compress them in parallel), and each
//! sealed pack is committed to the index.
//!
//! Invariant: a chunk id counts as stored only when it is in the index (its
//! pack is durable) or pending in this writer; the snapshot record that names
//! it is written by the caller only after `finish` returns.

use super::index::{Index, IndexReader};
use super::Store;
use crate::chunker;
use crate::error::Result;
use crate::format::entry::MAX_CHAIN;
use crate::id::{ChunkId, PackId};
use crate::packer::{Levels, NewChunk, Packer, SealedPack};
use crate::store::packs::PackReader;
use crate::store::reader::{decode_chain, read_chain, resolve};
use rayon::prelude::*;
use std::collections::HashSet;

/// Plain bytes queued before the packer compresses them as one parallel batch.
const BATCH_BYTES: usize = 4 << 20;
/// Sealed pack bytes, or entries, recorded in the index in one commit (the
/// entry bound keeps a commit of small deltas from holding many rows in
/// memory: the rows and the pending ids are what a large database's daily
/// take holds beyond fixed buffers; DESIGN.md, "Parameters").
const INDEX_BATCH: u64 = 256 << 20;
const INDEX_BATCH_ROWS: usize = 16_384;

#[derive(Debug, Default, Clone, Copy)]
pub struct WriteStats {
    /// Pack bytes written (entries, headers and trailers).
    pub added: u64,
    pub added_raw: u64,
    pub chunks_added: u64,
}

pub struct ChunkWriter<'a> {
    store: &'a Store,
    index: &'a Index,
    reader: IndexReader,
    packer: Packer<'a>,
    packs: PackReader,
    /// New chunks: id, plain bytes, delta base, delta level.
    queue: Vec<(ChunkId, Vec<u8>, Option<ChunkId>, Levels)>,
    queued_bytes: usize,
    /// Ids queued, in the open pack or in `sealed`: stored by this writer,
    /// not yet indexed.
    pending: HashSet<ChunkId>,
    /// Durable packs not yet in the index, recorded together.
    sealed: Vec<SealedPack>,
    /// Every pack sealed by this writer, for `abandon`.
    written: Vec<PackId>,
    stats: WriteStats,
    /// A dry run (`take --dry-run`): chunks are compressed to count their
    /// stored bytes, and nothing is written.
    dry: bool,
}

/// What `ChunkWriter::abandon` undid, and what it could not.
#[derive(Debug, Default)]
pub struct Abandoned {
    /// Packs removed (from the index, then from the disk).
    pub removed: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Packs left in place (not indexed by any snapshot; gc removes them),
    /// and why.
    pub left: Vec<(PackId, String)>,
}

impl Abandoned {
    /// Nothing had been written.
    pub fn is_nothing(&self) -> bool {
        self.removed == 0 && self.left.is_empty()
    }

    /// What was undone, in a sentence.
    pub fn describe(&self) -> String {
        if self.is_nothing() {
            return "nothing was written".into();
        }
        let mut s = format!(
            "the {} packs ({}) written so far were removed",
            self.removed,
            indicatif::HumanBytes(self.bytes)
        );
        if let Some((_, why)) = self.left.first() {
            s.push_str(&format!(
                "; {} packs could not be ({why}): no snapshot names them, and `snap gc` removes them",
                self.left.len()
            ));
        }
        s
    }
}

impl<'a> ChunkWriter<'a> {
    pub fn new(store: &'a Store, index: &'a Index) -> Result<Self> {
        store.upgrade_format()?;
        Self::with(store, index, false)
    }

    /// A writer that writes nothing: `put` answers as it would, and
    /// `finish` returns what would have been added (pack entries and
    /// their header records; pack trailers and index growth are not
    /// counted). The store's format is not upgraded.
    pub fn dry(store: &'a Store, index: &'a Index) -> Result<Self> {
        Self::with(store, index, true)
    }

    fn with(store: &'a Store, index: &'a Index, dry: bool) -> Result<Self> {
        Ok(ChunkWriter {
            store,
            index,
            reader: index.reader()?,
            packer: Packer::new(store),
            packs: PackReader::new(store),
            queue: Vec::new(),
            queued_bytes: 0,
            pending: HashSet::new(),
            sealed: Vec::new(),
            written: Vec::new(),
            stats: WriteStats::default(),
            dry,
        })
    }

    pub fn store(&self) -> &'a Store {
        self.store
    }

    /// Whether it writes nothing (a dry run).
    pub fn is_dry(&self) -> bool {
        self.dry
    }

    /// The index it writes to.
    pub fn index(&self) -> &'a Index {
        self.index
    }

    /// Is this chunk already stored (indexed or pending)?
    pub fn has(&self, id: &ChunkId) -> Result<bool> {
        Ok(self.pending.contains(id) || self.reader.contains(id)?)
    }

    /// The plain bytes of an indexed chunk (one a parent snapshot names),
    /// verified against its id. A chunk only pending in this writer is not
    /// readable yet.
    pub fn read(&self, id: &ChunkId) -> Result<Vec<u8>> {
        let loc = self.reader.locate(id)?;
        resolve(&self.reader, &self.packs, &loc).map(|(plain, _)| plain)
    }

    /// Stores `data` unless a chunk with its id is already stored.
    pub fn put(&mut self, data: Vec<u8>) -> Result<ChunkId> {
        self.put_with_base(data, None)
    }

    /// Like `put`, but a new chunk may be stored as a delta against `base`
    /// (the previous version of a database page).
    pub fn put_with_base(&mut self, data: Vec<u8>, base: Option<ChunkId>) -> Result<ChunkId> {
        let levels = Levels {
            full: self.store().config().zstd_level,
            delta: crate::format::entry::DELTA_LEVEL,
            refresh: false,
        };
        self.put_hashed(ChunkId::of(&data), data, base, levels)
    }

    /// Like `put_with_base`, for `data` already hashed to `id` (the caller
    /// hashed a batch in parallel), compressed at `levels`. `id` must be
    /// `ChunkId::of(&data)`.
    pub fn put_hashed(
        &mut self,
        id: ChunkId,
        data: Vec<u8>,
        base: Option<ChunkId>,
        levels: Levels,
    ) -> Result<ChunkId> {
        debug_assert_eq!(id, ChunkId::of(&data));
        if !self.has(&id)? {
            self.pending.insert(id);
            self.queued_bytes += data.len();
            self.stats.added_raw += data.len() as u64;
            self.stats.chunks_added += 1;
            self.queue
                .push((id, data, base.filter(|b| *b != id), levels));
            if self.queued_bytes >= BATCH_BYTES {
                self.flush()?;
            }
        }
        Ok(id)
    }

    /// Chunks an in-memory buffer (an encoded tree) with the tree chunker.
    pub fn put_buffer(&mut self, bytes: &[u8]) -> Result<Vec<ChunkId>> {
        chunker::buffer_chunks(bytes, self.store.config().tree_chunker)
            .into_iter()
            .map(|r| self.put(bytes[r].to_vec()))
            .collect()
    }

    fn flush(&mut self) -> Result<()> {
        crate::cancel::check()?;
        let queue = std::mem::take(&mut self.queue);
        self.queued_bytes = 0;
        let (index, packs) = (&self.reader, &self.packs);
        let batch: Vec<NewChunk> = queue
            .into_par_iter()
            .map(|(id, plain, base, levels)| {
                // A base that cannot be read just means this chunk is stored in full.
                let found = base.and_then(|b| base_for(index, packs, &b).ok().flatten());
                let rebased = found.as_ref().is_some_and(|f| f.2);
                NewChunk {
                    id,
                    plain,
                    base: found.map(|(id, bytes, _)| (id, bytes)),
                    rebased,
                    levels,
                }
            })
            .collect();
        if self.dry {
            let record = crate::format::pack::RECORD_LEN as u64;
            self.stats.added += batch
                .par_iter()
                .map(|c| crate::packer::encode(c).1.len() as u64 + record)
                .sum::<u64>();
            return Ok(());
        }
        for sealed in self.packer.add(batch)? {
            self.commit(Some(sealed), false)?;
        }
        Ok(())
    }

    /// Notes a durable pack; records the noted packs in the index once they
    /// reach `INDEX_BATCH` bytes or `INDEX_BATCH_ROWS` entries (or `all`).
    fn commit(&mut self, sealed: Option<SealedPack>, all: bool) -> Result<()> {
        if let Some(p) = sealed {
            self.stats.added += p.size;
            self.written.push(p.id);
            self.sealed.push(p);
        }
        let bytes: u64 = self.sealed.iter().map(|p| p.size).sum();
        let rows: usize = self.sealed.iter().map(|p| p.entries.len()).sum();
        if self.sealed.is_empty() || (!all && bytes < INDEX_BATCH && rows < INDEX_BATCH_ROWS) {
            return Ok(());
        }
        let sealed = std::mem::take(&mut self.sealed);
        let rows: Vec<_> = sealed
            .iter()
            .map(|p| (p.id, p.size, p.entries.as_slice()))
            .collect();
        self.index.add_packs(&rows)?;
        for e in sealed.iter().flat_map(|p| &p.entries) {
            self.pending.remove(&e.id);
        }
        self.reader = self.index.reader()?;
        Ok(())
    }

    /// Seals and indexes everything written so far. After this returns, every
    /// id `put` returned is durable and in the index.
    pub fn finish(&mut self) -> Result<WriteStats> {
        self.flush()?;
        if self.dry {
            return Ok(self.stats);
        }
        for sealed in self.packer.finish()? {
            self.commit(Some(sealed), false)?;
        }
        self.commit(None, true)?;
        debug_assert!(self.pending.is_empty());
        Ok(self.stats)
    }

    /// Undoes this writer after a failure or an interruption: every pack it
    /// sealed is forgotten by the index, then deleted (in that order, so the
    /// index never names a missing pack), and the pack it was filling is
    /// dropped. No snapshot names any of them: records are written only
    /// after `finish`, under the same exclusive lock.
    pub fn abandon(mut self) -> Abandoned {
        let mut out = Abandoned::default();
        let mut packs = std::mem::take(&mut self.written);
        packs.extend(self.packer.abandon().into_iter().map(|p| p.id));
        packs.sort();
        packs.dedup();
        let mut rows = Vec::new();
        for id in packs {
            match crate::store::packs::read_header(&self.store.pack_path(&id)) {
                Ok(entries) => rows.push((id, entries.into_iter().map(|e| e.id).collect())),
                Err(e) => out.left.push((id, e.to_string())),
            }
        }
        if let Err(e) = self.index.remove_packs(&rows) {
            out.left
                .extend(rows.into_iter().map(|(id, _)| (id, e.to_string())));
            return out;
        }
        for (id, _) in rows {
            let path = self.store.pack_path(&id);
            let size = std::fs::metadata(&path).map_or(0, |m| m.len());
            match super::durable::remove_file(&path) {
                Ok(()) => {
                    out.removed += 1;
                    out.bytes += size;
                }
                Err(e) => out.left.push((id, e.to_string())),
            }
        }
        out
    }
}

/// The delta base for a chunk whose previous version is `candidate`, with
/// its plain bytes: the candidate itself while its chain of deltas is
/// shorter than `MAX_CHAIN` (a delta then costs about the change since that
/// version), else the chunk stored in full at its chain's root. None when
/// the candidate is not indexed (pending in this take, or unknown): then the
/// chunk is stored in full, so a base is always durable and indexed before a
/// delta names it.
fn base_for(
    index: &IndexReader,
    packs: &PackReader,
    candidate: &ChunkId,
) -> Result<Option<(ChunkId, Vec<u8>, bool)>> {
    let Some(loc) = index.get(candidate)? else {
        return Ok(None);
    };
    let chain = read_chain(index, packs, &loc)?;
    if chain.len() <= MAX_CHAIN {
        return Ok(Some((*candidate, decode_chain(&chain)?, false)));
    }
    let root = chain.last().expect("a chain has an entry");
    Ok(Some((
        root.0.entry.id,
        decode_chain(std::slice::from_ref(root))?,
        true,
    )))
}

#[cfg(test)]
mod tests;
