//! Packer: compresses new chunks in parallel (rayon; zstd is the measured
//! bottleneck of the write path) and appends them to a pack file, sealing it
//! when it reaches the target size.
//!
//! Invariant: `SealedPack` is returned only after the pack is fsynced, renamed
//! to its final name (the BLAKE3 of its bytes), its directory fsynced and its
//! header re-read and checked. Only then may the index name it.

use super::chain::Base;
use super::similar::Pool;
use super::Store;
use crate::durable::{self, TempFile};
use crate::error::{Error, Result};
use crate::format::entry;
use crate::format::pack::{self, PackEntry};
use crate::id::{ChunkId, PackId};
use rayon::prelude::*;
use std::sync::Arc;

/// A chunk to store, with the chunk it may be stored as a delta against.
pub(crate) struct NewChunk {
    pub id: ChunkId,
    pub plain: Vec<u8>,
    /// The base its previous version gives (`StoreReader::delta_base`).
    pub base: Option<Arc<Base>>,
    /// The bases of the other chunks of its write, for content that moved
    /// (database units only).
    pub pool: Option<Arc<Pool>>,
    pub levels: Levels,
}

/// A new chunk's stored bytes: a delta against its base when it has one
/// (and that is smaller), else compressed alone; then, for a large result,
/// a delta against similar bases too when that is smaller still.
pub(crate) fn encode(c: &NewChunk) -> (crate::format::pack::EntryKind, Vec<u8>) {
    let single = match c.base.as_deref() {
        Some(b) if b.rebased && c.levels.refresh => {
            entry::encode_refreshing(&c.plain, &b.id, &b.plain, c.levels.delta, c.levels.full)
        }
        Some(b) => {
            entry::encode_with_base(&c.plain, &b.id, &b.plain, c.levels.delta, c.levels.full)
        }
        None => entry::encode_entry(&c.plain, c.levels.full),
    };
    super::similar::improve(c, single)
}

/// The zstd levels of one chunk: stored alone, and as a delta.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Levels {
    pub full: i32,
    pub delta: i32,
    /// A delta against a full chain's root is kept only when under a
    /// quarter of the chunk compressed alone, else the chunk is stored whole
    /// (a new root): for points, whose units change every second and drift
    /// from an old root (`entry::encode_refreshing`).
    pub refresh: bool,
    /// A database unit: it may be stored against the previous versions of
    /// other units of its write too (`similar`).
    pub similar: bool,
    /// Deltas down its previous versions before a new chain starts
    /// (`entry::MAX_CHAIN` for a take, `POINT_CHAIN` for a point).
    pub chain: usize,
}

pub(crate) struct SealedPack {
    pub id: PackId,
    pub size: u64,
    pub entries: Vec<PackEntry>,
}

struct OpenPack {
    file: TempFile,
    hasher: blake3::Hasher,
    entries: Vec<PackEntry>,
    len: u64,
}

/// Entries in one pack at most: a pack of small deltas (a large database's
/// daily take stores ~550-byte units) would otherwise hold 60,000 of them in
/// 32 MiB, and its header (49 bytes an entry) is built, written and read
/// back in memory while it seals. At 16,384 a header is under 800 KiB.
const MAX_ENTRIES: usize = 16_384;

/// Packs being sealed (header, fsync, rename, fsync, re-read) on their own
/// threads while the next pack fills: the disk's fsync overlaps the CPU work.
const MAX_SEALING: usize = 3;

pub(crate) struct Packer<'a> {
    store: &'a Store,
    current: Option<OpenPack>,
    sealing: std::collections::VecDeque<std::thread::JoinHandle<Result<SealedPack>>>,
    /// Seals already joined, not yet handed to the caller.
    ready: Vec<SealedPack>,
}

impl<'a> Packer<'a> {
    pub fn new(store: &'a Store) -> Self {
        Packer {
            store,
            current: None,
            sealing: Default::default(),
            ready: Vec::new(),
        }
    }

    /// Compresses and appends `chunks`; returns the packs whose sealing
    /// finished meanwhile (each durable and ready for the index).
    pub fn add(&mut self, chunks: Vec<NewChunk>) -> Result<Vec<SealedPack>> {
        let encoded: Vec<_> = chunks
            .into_par_iter()
            .map(|c| {
                let (kind, bytes) = encode(&c);
                (c.id, c.plain.len() as u32, kind, bytes)
            })
            .collect();
        for (id, raw_length, kind, bytes) in encoded {
            self.append(id, raw_length, kind, &bytes)?;
        }
        self.collect(false)
    }

    /// Appends entries exactly as stored elsewhere (gc's repack): no
    /// recompression, and deltas keep their base.
    pub(crate) fn add_stored(
        &mut self,
        entries: Vec<(PackEntry, Vec<u8>)>,
    ) -> Result<Vec<SealedPack>> {
        for (e, bytes) in entries {
            self.append(e.id, e.raw_length, e.kind, &bytes)?;
        }
        self.collect(false)
    }

    fn append(
        &mut self,
        id: ChunkId,
        raw_length: u32,
        kind: pack::EntryKind,
        bytes: &[u8],
    ) -> Result<()> {
        let open = match &mut self.current {
            Some(open) => open,
            None => self.current.insert(self.start()?),
        };
        open.file.write_all(bytes)?;
        open.hasher.update(bytes);
        open.entries.push(PackEntry {
            kind,
            id,
            offset: open.len,
            length: bytes.len() as u32,
            raw_length,
        });
        open.len += bytes.len() as u64;
        if open.len >= self.store.config().pack_size || open.entries.len() >= MAX_ENTRIES {
            self.start_seal()?;
        }
        Ok(())
    }

    fn start_seal(&mut self) -> Result<()> {
        let open = self.current.take().expect("an open pack");
        let store = self.store.clone();
        self.sealing
            .push_back(std::thread::spawn(move || seal(&store, open)));
        while self.sealing.len() > MAX_SEALING {
            let done = self.collect_one()?;
            self.ready.push(done);
        }
        Ok(())
    }

    fn collect_one(&mut self) -> Result<SealedPack> {
        let handle = self.sealing.pop_front().expect("a seal in flight");
        handle
            .join()
            .map_err(|_| Error::Internal("a pack sealing thread panicked".into()))?
    }

    /// Seals that finished (all of them, waiting, when `wait`), oldest first.
    fn collect(&mut self, wait: bool) -> Result<Vec<SealedPack>> {
        let mut done = std::mem::take(&mut self.ready);
        while self
            .sealing
            .front()
            .is_some_and(|h| wait || h.is_finished())
        {
            done.push(self.collect_one()?);
        }
        Ok(done)
    }

    /// Seals the pack being written, if any, and waits for every seal.
    pub fn finish(&mut self) -> Result<Vec<SealedPack>> {
        if self.current.is_some() {
            self.start_seal()?;
        }
        self.collect(true)
    }

    /// Stops: the pack being filled is dropped (its temporary file
    /// removed) and every seal in flight is waited for. Returns the packs
    /// that were sealed and not yet handed out, for the caller to undo.
    pub(crate) fn abandon(&mut self) -> Vec<SealedPack> {
        self.current = None;
        let mut done = std::mem::take(&mut self.ready);
        while let Some(h) = self.sealing.pop_front() {
            if let Ok(Ok(p)) = h.join() {
                done.push(p);
            }
        }
        done
    }

    fn start(&self) -> Result<OpenPack> {
        Ok(OpenPack {
            file: TempFile::new_in(&self.store.tmp_dir(), ".pack-")?,
            hasher: blake3::Hasher::new(),
            entries: Vec::new(),
            len: 0,
        })
    }
}

/// Writes the header, makes the pack durable under its final name and checks
/// the header as a reader will see it (restic does the same).
fn seal(store: &Store, mut open: OpenPack) -> Result<SealedPack> {
    let header = pack::encode_header(&open.entries);
    open.hasher.update(&header);
    open.file.write_all(&header)?;
    open.file.sync()?;
    let id = PackId(*open.hasher.finalize().as_bytes());
    let dest = store.pack_path(&id);
    let dir = dest.parent().expect("packs/xx");
    durable::create_dir_durable(dir)?;
    // A pack of the same name holds the same bytes: replacing it changes nothing.
    open.file.persist(&dest)?;
    durable::fsync_dir(dir)?;
    let reread = super::packs::read_header(&dest)?;
    if reread != open.entries {
        return Err(Error::corrupt(
            format!("pack {id}"),
            "header read back differs from the one written",
        ));
    }
    Ok(SealedPack {
        id,
        size: open.len + header.len() as u64,
        entries: open.entries,
    })
}
