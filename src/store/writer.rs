//! PackWriter: new chunks → packer → durable packs → index rows, the
//! store's side of a take. Sealed packs are recorded in the index in
//! batches (one commit per `INDEX_BATCH` bytes or `INDEX_BATCH_ROWS` rows).
//!
//! Invariant: the index names a pack only once it is durable under its
//! name (`packer::seal`); `abandon` forgets packs in the index before it
//! deletes them, so the index never names a missing pack.

use super::index::Index;
use super::packer::{NewChunk, Packer, SealedPack};
use super::{packs, Store};
use crate::durable;
use crate::error::Result;
use crate::id::{ChunkId, PackId};

/// Sealed pack bytes, or entries, recorded in the index in one commit (the
/// entry bound keeps a commit of small deltas from holding many rows in
/// memory: the rows and the pending ids are what a large database's daily
/// take holds beyond fixed buffers; DESIGN.md, "Parameters").
const INDEX_BATCH: u64 = 256 << 20;
const INDEX_BATCH_ROWS: usize = 16_384;

/// Writes new chunks into packs and records the sealed packs in the index.
pub(crate) struct PackWriter<'a> {
    store: &'a Store,
    index: &'a Index,
    packer: Packer<'a>,
    /// Durable packs not yet in the index, recorded together.
    sealed: Vec<SealedPack>,
    /// Every pack sealed by this writer, for `abandon`.
    written: Vec<PackId>,
    /// Pack bytes written (entries, headers and trailers).
    added: u64,
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
    pub(crate) fn is_nothing(&self) -> bool {
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
                "; {} packs could not be ({why}): no snapshot names them, and gc removes them",
                self.left.len()
            ));
        }
        s
    }
}

impl<'a> PackWriter<'a> {
    pub(crate) fn new(store: &'a Store, index: &'a Index) -> Self {
        PackWriter {
            store,
            index,
            packer: Packer::new(store),
            sealed: Vec::new(),
            written: Vec::new(),
            added: 0,
        }
    }

    /// Pack bytes written so far.
    pub(crate) fn added(&self) -> u64 {
        self.added
    }

    /// Compresses and appends `batch`; returns the ids the index now names
    /// that it did not before (those of the packs recorded by this call).
    pub(crate) fn add(&mut self, batch: Vec<NewChunk>) -> Result<Vec<ChunkId>> {
        let sealed = self.packer.add(batch)?;
        self.commit(sealed, false)
    }

    /// Seals the open pack and records every sealed pack: afterwards every
    /// chunk handed to `add` is durable and indexed. Returns the ids newly
    /// indexed.
    pub(crate) fn finish(&mut self) -> Result<Vec<ChunkId>> {
        let sealed = self.packer.finish()?;
        self.commit(sealed, true)
    }

    /// Notes durable packs; records the noted packs in the index once they
    /// reach `INDEX_BATCH` bytes or `INDEX_BATCH_ROWS` entries (or `all`).
    fn commit(&mut self, new: Vec<SealedPack>, all: bool) -> Result<Vec<ChunkId>> {
        for p in new {
            self.added += p.size;
            self.written.push(p.id);
            self.sealed.push(p);
        }
        let bytes: u64 = self.sealed.iter().map(|p| p.size).sum();
        let rows: usize = self.sealed.iter().map(|p| p.entries.len()).sum();
        if self.sealed.is_empty() || (!all && bytes < INDEX_BATCH && rows < INDEX_BATCH_ROWS) {
            return Ok(Vec::new());
        }
        let sealed = std::mem::take(&mut self.sealed);
        let rows: Vec<_> = sealed
            .iter()
            .map(|p| (p.id, p.size, p.entries.as_slice()))
            .collect();
        self.index.add_packs(&rows)?;
        Ok(sealed
            .iter()
            .flat_map(|p| &p.entries)
            .map(|e| e.id)
            .collect())
    }

    /// Undoes this writer after a failure or an interruption: every pack it
    /// sealed is forgotten by the index, then deleted (in that order, so the
    /// index never names a missing pack), and the pack it was filling is
    /// dropped. No snapshot names any of them: records are written only
    /// after `finish`, under the same writer's lock.
    pub(crate) fn abandon(mut self) -> Abandoned {
        let mut out = Abandoned::default();
        let mut ids = std::mem::take(&mut self.written);
        ids.extend(self.packer.abandon().into_iter().map(|p| p.id));
        ids.sort();
        ids.dedup();
        let mut rows = Vec::new();
        for id in ids {
            match packs::read_header(&self.store.pack_path(&id)) {
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
            match durable::remove_file(&path) {
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
