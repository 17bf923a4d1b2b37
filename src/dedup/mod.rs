//! Dedup, the "index has it?" stage of take: each new chunk is hashed and
//! looked up; chunks the store does not hold yet are queued, handed to the
//! store's pack writer in batches (so rayon compresses them in parallel),
//! each with the delta base the store finds for its previous version.
//!
//! Invariant: a chunk id counts as stored only when it is in the index (its
//! pack is durable) or pending in this writer; the snapshot record that names
//! it is written by the caller only after `finish` returns.

use crate::chunker;
use crate::error::Result;
use crate::id::ChunkId;
use crate::store::packer::{encode, Levels, NewChunk};
use crate::store::writer::{Abandoned, PackWriter};
use crate::store::{Base, Pool, Repository, Store, StoreReader};
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Plain bytes queued before the packer compresses them as one parallel batch.
const BATCH_BYTES: usize = 4 << 20;
/// Plain bytes of the previous versions a write may announce
/// (`expect_bases`): 640 units of 64 KiB.
const POOL_BYTES: usize = 40 << 20;

/// What a writer added to the store.
#[derive(Debug, Default, Clone, Copy)]
pub struct WriteStats {
    /// Pack bytes written (entries, headers and trailers).
    pub added: u64,
    /// Plain bytes of the chunks added.
    pub added_raw: u64,
    /// Chunks added.
    pub chunks_added: u64,
}

/// Stores chunks the store does not hold yet (see the module doc).
pub struct ChunkWriter<'a> {
    repo: &'a Repository,
    /// The index as last committed by this writer (refreshed on commits).
    reader: StoreReader,
    packs: PackWriter<'a>,
    /// New chunks: id, plain bytes, delta base, delta level.
    queue: Vec<(ChunkId, Vec<u8>, Option<ChunkId>, Levels)>,
    queued_bytes: usize,
    /// Ids queued, in the open pack or sealed and not yet indexed: stored
    /// by this writer, not yet in the index.
    pending: HashSet<ChunkId>,
    stats: WriteStats,
    /// The bases `expect_bases` found, by previous version, and their pool.
    expected: HashMap<ChunkId, Arc<Base>>,
    pool: Option<Arc<Pool>>,
    /// A dry run (`take --dry-run`): chunks are compressed to count their
    /// stored bytes, and nothing is written.
    dry: bool,
}

impl<'a> ChunkWriter<'a> {
    /// A writer into `repo`, which holds the writer's lock. An older
    /// store's format is upgraded first (delta chains are written).
    pub fn new(repo: &'a Repository) -> Result<Self> {
        repo.store().upgrade_format()?;
        Self::with(repo, false)
    }

    /// A writer that writes nothing: `put` answers as it would, and
    /// `finish` returns what would have been added (pack entries and
    /// their header records; pack trailers and index growth are not
    /// counted). The store's format is not upgraded.
    pub fn dry(repo: &'a Repository) -> Result<Self> {
        Self::with(repo, true)
    }

    fn with(repo: &'a Repository, dry: bool) -> Result<Self> {
        Ok(ChunkWriter {
            repo,
            reader: repo.new_reader()?,
            packs: repo.pack_writer(),
            queue: Vec::new(),
            queued_bytes: 0,
            pending: HashSet::new(),
            stats: WriteStats::default(),
            expected: HashMap::new(),
            pool: None,
            dry,
        })
    }

    /// The store it writes to.
    pub fn store(&self) -> &'a Store {
        self.repo.store()
    }

    /// The repository it writes to.
    pub fn repository(&self) -> &'a Repository {
        self.repo
    }

    /// Whether it writes nothing (a dry run).
    pub(crate) fn is_dry(&self) -> bool {
        self.dry
    }

    /// Is this chunk already stored (indexed or pending)?
    pub fn has(&self, id: &ChunkId) -> Result<bool> {
        Ok(self.pending.contains(id) || self.reader.has(id)?)
    }

    /// The plain bytes of an indexed chunk (one a parent snapshot names),
    /// verified against its id. A chunk only pending in this writer is not
    /// readable yet.
    pub fn read(&self, id: &ChunkId) -> Result<Vec<u8>> {
        self.reader.chunk(id)
    }

    /// Stores `data` unless a chunk with its id is already stored.
    pub fn put(&mut self, data: Vec<u8>) -> Result<ChunkId> {
        self.put_with_base(data, None)
    }

    /// Like `put`, but a new chunk may be stored as a delta against `base`
    /// (the previous version of a database page).
    pub(crate) fn put_with_base(
        &mut self,
        data: Vec<u8>,
        base: Option<ChunkId>,
    ) -> Result<ChunkId> {
        let levels = Levels {
            full: self.store().config().zstd_level,
            delta: crate::format::entry::DELTA_LEVEL,
            refresh: false,
            similar: false,
            chain: crate::format::entry::MAX_CHAIN,
        };
        self.put_hashed(ChunkId::of(&data), data, base, levels)
    }

    /// Like `put_with_base`, for `data` already hashed to `id` (the caller
    /// hashed a batch in parallel), compressed at `levels`. `id` must be
    /// `ChunkId::of(&data)`.
    pub(crate) fn put_hashed(
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
        chunker::buffer_chunks(bytes, self.store().config().tree_chunker)
            .into_iter()
            .map(|r| self.put(bytes[r].to_vec()))
            .collect()
    }

    fn flush(&mut self) -> Result<()> {
        crate::cancel::check()?;
        let queue = std::mem::take(&mut self.queue);
        self.queued_bytes = 0;
        let (reader, expected) = (&self.reader, &self.expected);
        // A base that cannot be read just means this chunk is stored in full.
        let found: Vec<Option<Arc<Base>>> = queue
            .par_iter()
            .map(|q| {
                let b = q.2?;
                expected.get(&b).cloned().or_else(|| {
                    reader
                        .delta_base(&b, q.3.chain)
                        .ok()
                        .flatten()
                        .map(Arc::new)
                })
            })
            .collect();
        let pool = match &self.pool {
            Some(pool) => Some(pool.clone()),
            None => queue.iter().find(|q| q.3.similar).map(|q| {
                Arc::new(Pool::new(
                    found.iter().flatten().cloned().collect(),
                    q.3.chain,
                ))
            }),
        };
        let batch: Vec<NewChunk> = queue
            .into_iter()
            .zip(found)
            .map(|((id, plain, _, levels), base)| NewChunk {
                id,
                plain,
                base,
                pool: pool.clone().filter(|_| levels.similar),
                levels,
            })
            .collect();
        if self.dry {
            let record = crate::format::pack::RECORD_LEN as u64;
            self.stats.added += batch
                .par_iter()
                .map(|c| encode(c).1.len() as u64 + record)
                .sum::<u64>();
            return Ok(());
        }
        let indexed = self.packs.add(batch)?;
        self.indexed(indexed)
    }

    /// Prepares for a write whose chunks' previous versions are
    /// `candidates` (a point's changed units): when their plain bytes fit
    /// in `POOL_BYTES`, their delta bases are found at once, and form the
    /// pool every chunk of the write is compared with (content moves from
    /// any unit to any other, not only to one nearby). Without it, each
    /// batch's pool is the batch's bases.
    pub(crate) fn expect_bases(
        &mut self,
        candidates: &[ChunkId],
        chunk_bytes: usize,
        max_chain: usize,
    ) {
        if candidates.is_empty() || candidates.len() * chunk_bytes > POOL_BYTES {
            return;
        }
        let reader = &self.reader;
        let found: Vec<(ChunkId, Arc<Base>)> = candidates
            .par_iter()
            .filter_map(|c| Some((*c, Arc::new(reader.delta_base(c, max_chain).ok()??))))
            .collect();
        let bases = found.iter().map(|(_, b)| b.clone()).collect();
        self.expected.extend(found);
        self.pool = Some(Arc::new(Pool::new(bases, max_chain)));
    }

    /// Ids the index now names are no longer pending; the reader is made
    /// again so that it sees them (and can read them as delta bases).
    fn indexed(&mut self, ids: Vec<ChunkId>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        for id in &ids {
            self.pending.remove(id);
        }
        self.reader = self.repo.new_reader()?;
        Ok(())
    }

    /// Seals and indexes everything written so far. After this returns, every
    /// id `put` returned is durable and in the index.
    pub fn finish(&mut self) -> Result<WriteStats> {
        self.flush()?;
        if !self.dry {
            let indexed = self.packs.finish()?;
            self.indexed(indexed)?;
            self.stats.added = self.packs.added();
            debug_assert!(self.pending.is_empty());
        }
        Ok(self.stats)
    }

    /// Undoes this writer after a failure or an interruption (see
    /// `PackWriter::abandon`): no snapshot names what it wrote.
    pub(crate) fn abandon(self) -> Abandoned {
        self.packs.abandon()
    }
}

#[cfg(test)]
mod tests;
