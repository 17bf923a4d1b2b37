//! StoreReader: chunks and trees by id, through the index and the packs.
//! Delta entries are decoded with their base, which may be a delta too (at
//! most `MAX_READ_CHAIN` deep).

use super::chain::{bases_named, closure, decode_with, too_long};
pub(crate) use super::chain::{dictionary, read_chain, resolve};
use super::index::{Index, IndexReader, Location};
use super::packs::{decode_link_named, decode_named, PackReader};
use super::Store;
use crate::error::{Error, Result};
use crate::format::entry::{bases_of, MAX_READ_CHAIN};

use crate::format::tree::{decode_tree, Node, NodeKind, Tree};
use crate::format::units::{UnitList, Units};
use crate::id::ChunkId;
use rayon::prelude::*;
use std::collections::HashMap;

/// The ids of a file's chunks as `copy_chunks` takes them.
pub fn ids(chunks: &[ChunkId]) -> impl Iterator<Item = Result<ChunkId>> + '_ {
    chunks.iter().copied().map(Ok)
}

/// Plain bytes fetched and verified in parallel before being written in order.
pub(crate) const READ_AHEAD: u64 = 8 << 20;

pub struct StoreReader {
    pub index: IndexReader,
    pub packs: PackReader,
    /// Every chunk's place by the pack headers, read once the index proved
    /// wrong (`relocate`).
    headers: std::sync::OnceLock<HashMap<ChunkId, Location>>,
}

impl StoreReader {
    pub fn new(store: &Store, index: &Index) -> Result<Self> {
        Ok(StoreReader {
            index: index.reader()?,
            packs: PackReader::new(store),
            headers: Default::default(),
        })
    }

    /// The plain chunk, verified against its id.
    pub fn chunk(&self, id: &ChunkId) -> Result<Vec<u8>> {
        let loc = self.locate(id)?;
        resolve(&self.index, &self.packs, &loc)
            .map(|(plain, _)| plain)
            .or_else(|e| self.retry_elsewhere(&loc, e))
    }

    /// Where chunk `id` is: its index row, or, when the row is damaged,
    /// what the pack headers say.
    pub fn locate(&self, id: &ChunkId) -> Result<Location> {
        self.index.locate(id).or_else(|e| match e {
            Error::Corrupt { .. } => self.relocate(id, None).ok_or(e),
            e => Err(e),
        })
    }

    /// The place the pack headers give chunk `id` when the index row `bad`
    /// led to damage (or could not be read): the header of the pack the row
    /// names, else every local pack's header (read once). None when they
    /// agree with the row, or know nothing better. The index is a cache of
    /// the headers, so a row they contradict is a damaged row; the store
    /// notes it (`repair index` rebuilds the index).
    fn relocate(&self, id: &ChunkId, bad: Option<&Location>) -> Option<Location> {
        let store = self.packs.store();
        let own = bad.and_then(|l| {
            let entries = super::packs::read_header(&store.readable_pack_path(&l.pack)?).ok()?;
            let entry = entries.into_iter().find(|e| e.id == *id)?;
            Some(Location {
                pack: l.pack,
                entry,
            })
        });
        let found = own.filter(|l| Some(l) != bad).or_else(|| {
            let all = self.headers.get_or_init(|| {
                let mut map = HashMap::new();
                for (pack, path) in store.pack_files().unwrap_or_default() {
                    for entry in super::packs::read_header(&path).unwrap_or_default() {
                        map.entry(entry.id).or_insert(Location { pack, entry });
                    }
                }
                map
            });
            all.get(id).cloned().filter(|l| Some(l) != bad)
        })?;
        store.note_bad_row(id);
        Some(found)
    }

    /// After a read of `loc` proved damaged: the chunk where the pack
    /// headers put it (a damaged index row), else from the fallback source.
    fn retry_elsewhere(&self, loc: &Location, err: Error) -> Result<Vec<u8>> {
        if matches!(err, Error::Corrupt { .. }) {
            if let Some(found) = self.relocate(&loc.entry.id, Some(loc)) {
                if let Ok((plain, _)) = resolve(&self.index, &self.packs, &found) {
                    return Ok(plain);
                }
            }
        }
        self.retry_from_fallback(loc, err)
    }

    /// After a corrupt read of `loc`: the chunk again, each piece of its
    /// chain (the entry, each base) that fails its check here read from the
    /// fallback source instead. Without a fallback, the error stands.
    fn retry_from_fallback(&self, loc: &Location, err: Error) -> Result<Vec<u8>> {
        if !self.packs.has_fallback() || !matches!(err, Error::Corrupt { .. }) {
            return Err(err);
        }
        let piece = |l: &Location, base: Option<&[u8]>| {
            self.packs
                .read_stored(l)
                .and_then(|s| decode_named(l, &s, base))
                .or_else(|_| decode_named(l, &self.packs.read_from_fallback(l)?, base))
        };
        // A delta's stored bytes name its bases; read them (here, or from
        // the source if unreadable here) without decoding first.
        let chain = closure(
            loc.clone(),
            |id| self.index.locate(id),
            |l| {
                self.packs
                    .read_stored(l)
                    .or_else(|_| self.packs.read_from_fallback(l))
            },
        )?;
        let mut plains: HashMap<ChunkId, Vec<u8>> = HashMap::new();
        for (l, s) in &chain {
            let bases = bases_named(l, s)?;
            let plain = piece(l, dictionary(l, &bases, |b| plains.get(b))?.as_deref())?;
            plains.insert(l.entry.id, plain);
        }
        Ok(plains
            .remove(&loc.entry.id)
            .expect("the chain ends with it"))
    }

    /// Many chunks, in order, each verified; reads are coalesced and decoding
    /// runs on all cores.
    pub fn chunks(&self, locs: &[Location]) -> Vec<Result<Vec<u8>>> {
        let stored = self.packs.read_stored_many(locs);
        let bases = self.bases(locs, &stored, 1);
        locs.par_iter()
            .zip(stored.par_iter())
            .map(|(loc, s)| decode_with(loc, s, &bases, decode_named))
            .collect::<Vec<_>>()
            .into_iter()
            .zip(locs)
            .map(|(r, loc)| r.or_else(|e| self.batch_failed(loc, e)))
            .collect()
    }

    /// After a chunk of a batch failed: from the fallback source if there is
    /// one; else, for damage, its chain read again with every link checked
    /// if need be (a batch does not hash the bases it decodes), so the error
    /// names the bad piece.
    fn batch_failed(&self, loc: &Location, err: Error) -> Result<Vec<u8>> {
        match err {
            Error::Corrupt { .. } if !self.packs.has_fallback() => {
                resolve(&self.index, &self.packs, loc)
                    .map(|(plain, _)| plain)
                    .or_else(|e| self.retry_elsewhere(loc, e))
            }
            err => self.retry_elsewhere(loc, err),
        }
    }

    /// The plain bytes of every base the delta entries among `stored` name,
    /// `depth` deltas down their chains: located, read with coalesced reads
    /// (sorted by place) and decoded in parallel, bases that are deltas
    /// themselves through the same, one level further down. Bases are not
    /// hashed: each chunk decoded with them is (`decode_chain`).
    fn bases(
        &self,
        locs: &[Location],
        stored: &[Result<Vec<u8>>],
        depth: usize,
    ) -> HashMap<ChunkId, Result<Vec<u8>>> {
        let mut ids: Vec<ChunkId> = locs
            .iter()
            .zip(stored)
            .filter_map(|(loc, s)| s.as_ref().ok().and_then(|s| bases_of(loc.entry.kind, s)))
            .flatten()
            .collect();
        ids.sort();
        ids.dedup();
        let mut out = HashMap::new();
        let mut found = Vec::new();
        for id in ids {
            match self.index.locate(&id) {
                Ok(l) if l.entry.kind.is_delta() && depth >= MAX_READ_CHAIN => {
                    out.insert(id, Err(too_long(&id)));
                }
                Ok(l) => found.push(l),
                Err(e) => {
                    out.insert(id, Err(e));
                }
            }
        }
        if found.is_empty() {
            return out;
        }
        found.sort_by_key(|l| (l.pack, l.entry.offset));
        let bytes = self.packs.read_stored_many(&found);
        let deeper = self.bases(&found, &bytes, depth + 1);
        let decoded: Vec<(ChunkId, Result<Vec<u8>>)> = found
            .par_iter()
            .zip(bytes.par_iter())
            .map(|(l, b)| (l.entry.id, decode_with(l, b, &deeper, decode_link_named)))
            .collect();
        out.extend(decoded);
        out
    }

    /// Visits every node under `nodes`, depth first and in name order, each
    /// with its path below `prefix`. Iterative, so a tree of any depth cannot
    /// overflow the stack. `visit` returns whether to enter a directory; a
    /// subtree that cannot be read goes to `failed`, which decides whether
    /// the walk goes on.
    pub fn walk(
        &self,
        prefix: &str,
        nodes: Vec<Node>,
        mut visit: impl FnMut(&str, &Node) -> Result<bool>,
        mut failed: impl FnMut(&str, Error) -> Result<()>,
    ) -> Result<()> {
        let join = |dir: &str, node: &Node| {
            if dir.is_empty() {
                node.name_lossy()
            } else {
                format!("{dir}/{}", node.name_lossy())
            }
        };
        let mut stack: Vec<(String, Node)> = nodes
            .into_iter()
            .rev()
            .map(|n| (join(prefix, &n), n))
            .collect();
        while let Some((path, node)) = stack.pop() {
            if !visit(&path, &node)? {
                continue;
            }
            if let NodeKind::Dir { tree } = &node.kind {
                match self.tree(tree) {
                    Ok(t) => stack.extend(t.nodes.into_iter().rev().map(|n| (join(&path, &n), n))),
                    Err(e) => failed(&path, e)?,
                }
            }
        }
        Ok(())
    }

    /// The unit ids of a database image, in order; a listed image's list is
    /// read a chunk at a time, each verified.
    pub fn units<'l>(
        &'l self,
        list: UnitList<'l>,
    ) -> Units<'l, impl FnMut(&ChunkId) -> Result<Vec<u8>> + 'l> {
        Units::new(list, move |id: &ChunkId| self.chunk(id))
    }

    /// Writes the plain bytes of `chunks`, in order and each verified, to
    /// `out`; reads ahead `READ_AHEAD` bytes at a time (coalesced, decoded in
    /// parallel), reporting each batch to `progress`. Returns the bytes written.
    /// Batches are written on another thread while the next one is read and
    /// decoded here (at most three are held). The writing thread never
    /// waits on rayon: this one may be a rayon worker, and a worker blocked
    /// on work that needs the pool could deadlock it.
    pub(crate) fn copy_chunks(
        &self,
        chunks: impl Iterator<Item = Result<ChunkId>>,
        out: &mut (impl std::io::Write + Send),
        progress: &crate::progress::Reporter,
    ) -> Result<u64> {
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<(Vec<Vec<u8>>, u64)>(1);
            let writing = s.spawn(move || {
                let mut written = 0;
                for (batch, bytes) in rx {
                    for data in batch {
                        out.write_all(&data).map_err(Error::io("write", "output"))?;
                        written += data.len() as u64;
                    }
                    progress.advance(bytes);
                }
                Ok::<_, Error>(written)
            });
            let mut rest = chunks.peekable();
            let read = (|| {
                while rest.peek().is_some() {
                    let (batch, bytes) = self.next_batch(&mut rest)?;
                    if tx.send((batch, bytes)).is_err() {
                        break; // the writer failed: its error is returned
                    }
                }
                Ok(())
            })();
            drop(tx);
            let written = writing.join().expect("the writing thread does not panic");
            read.and(written)
        })
    }

    /// The chunks of the next `READ_AHEAD` bytes of `rest`, read and
    /// decoded, with their plain size.
    pub(crate) fn next_batch(
        &self,
        rest: &mut impl Iterator<Item = Result<ChunkId>>,
    ) -> Result<(Vec<Vec<u8>>, u64)> {
        let mut locations = Vec::new();
        let mut bytes = 0;
        while bytes < READ_AHEAD {
            let Some(id) = rest.next() else { break };
            let loc = self.locate(&id?)?;
            bytes += loc.entry.raw_length as u64;
            locations.push(loc);
        }
        let batch = self.chunks(&locations).into_iter().collect::<Result<_>>()?;
        Ok((batch, bytes))
    }

    pub fn tree(&self, ids: &[ChunkId]) -> Result<Tree> {
        let mut bytes = Vec::new();
        for id in ids {
            bytes.extend(self.chunk(id)?);
        }
        decode_tree(&bytes)
    }
}
