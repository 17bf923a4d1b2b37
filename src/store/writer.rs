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
use crate::format::entry::delta_base;
use crate::format::pack::EntryKind;
use crate::id::ChunkId;
use crate::packer::{NewChunk, Packer, SealedPack};
use crate::store::packs::{decode_named, PackReader};
use rayon::prelude::*;
use std::collections::HashSet;

/// Plain bytes queued before the packer compresses them as one parallel batch.
const BATCH_BYTES: usize = 16 << 20;
/// Sealed pack bytes, or entries, recorded in the index in one commit (the
/// entry bound keeps a commit of small deltas from holding many rows in memory).
const INDEX_BATCH: u64 = 256 << 20;
const INDEX_BATCH_ROWS: usize = 65_536;

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
    packs: PackReader<'a>,
    /// New chunks: id, plain bytes, delta base, delta level.
    queue: Vec<(ChunkId, Vec<u8>, Option<ChunkId>, i32)>,
    queued_bytes: usize,
    /// Ids queued, in the open pack or in `sealed`: stored by this writer,
    /// not yet indexed.
    pending: HashSet<ChunkId>,
    /// Durable packs not yet in the index, recorded together.
    sealed: Vec<SealedPack>,
    stats: WriteStats,
}

impl<'a> ChunkWriter<'a> {
    pub fn new(store: &'a Store, index: &'a Index) -> Result<Self> {
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
            stats: WriteStats::default(),
        })
    }

    pub fn store(&self) -> &'a Store {
        self.store
    }

    /// Is this chunk already stored (indexed or pending)?
    pub fn has(&self, id: &ChunkId) -> Result<bool> {
        Ok(self.pending.contains(id) || self.reader.contains(id)?)
    }

    /// Stores `data` unless a chunk with its id is already stored.
    pub fn put(&mut self, data: Vec<u8>) -> Result<ChunkId> {
        self.put_with_base(data, None)
    }

    /// Like `put`, but a new chunk may be stored as a delta against `base`
    /// (the previous version of a database page).
    pub fn put_with_base(&mut self, data: Vec<u8>, base: Option<ChunkId>) -> Result<ChunkId> {
        let level = crate::format::entry::DELTA_LEVEL;
        self.put_hashed(ChunkId::of(&data), data, base, level)
    }

    /// Like `put_with_base`, for `data` already hashed to `id` (the caller
    /// hashed a batch in parallel), a delta made at `delta_level`. `id` must
    /// be `ChunkId::of(&data)`.
    pub fn put_hashed(
        &mut self,
        id: ChunkId,
        data: Vec<u8>,
        base: Option<ChunkId>,
        delta_level: i32,
    ) -> Result<ChunkId> {
        debug_assert_eq!(id, ChunkId::of(&data));
        if !self.has(&id)? {
            self.pending.insert(id);
            self.queued_bytes += data.len();
            self.stats.added_raw += data.len() as u64;
            self.stats.chunks_added += 1;
            self.queue
                .push((id, data, base.filter(|b| *b != id), delta_level));
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

    /// The full (non-delta) chunk to use as a delta base for `candidate`,
    /// with its location: the candidate itself, or the base it is a delta of.
    fn full_base(&self, candidate: &ChunkId) -> Result<Option<super::Location>> {
        let Some(loc) = self.reader.get(candidate)? else {
            return Ok(None); // pending or unknown: store in full
        };
        if loc.entry.kind != EntryKind::Delta {
            return Ok(Some(loc));
        }
        let stored = self.packs.read_stored(&loc)?;
        match delta_base(&stored) {
            Some(b) => Ok(self
                .reader
                .get(&b)?
                .filter(|l| l.entry.kind != EntryKind::Delta)),
            None => Ok(None),
        }
    }

    fn flush(&mut self) -> Result<()> {
        let queue = std::mem::take(&mut self.queue);
        self.queued_bytes = 0;
        let mut bases = Vec::with_capacity(queue.len());
        for (_, _, base, _) in &queue {
            bases.push(match base {
                Some(b) => self.full_base(b)?,
                None => None,
            });
        }
        let packs = &self.packs;
        let batch: Vec<NewChunk> = queue
            .into_par_iter()
            .zip(bases)
            .map(|((id, plain, _, delta_level), base)| {
                // A base that cannot be read just means this chunk is stored in full.
                let base = base.and_then(|loc| {
                    let stored = packs.read_stored(&loc).ok()?;
                    Some((loc.entry.id, decode_named(&loc, &stored, None).ok()?))
                });
                NewChunk {
                    id,
                    plain,
                    base,
                    delta_level,
                }
            })
            .collect();
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
    pub fn finish(mut self) -> Result<WriteStats> {
        self.flush()?;
        for sealed in self.packer.finish()? {
            self.commit(Some(sealed), false)?;
        }
        self.commit(None, true)?;
        debug_assert!(self.pending.is_empty());
        Ok(self.stats)
    }
}
