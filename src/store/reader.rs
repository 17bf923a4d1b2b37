//! StoreReader: chunks and trees by id, through the index and the packs.
//! Delta entries are decoded with their base, which is never itself a delta.

use super::index::{Index, IndexReader, Location};
use super::packs::{decode_named, PackReader};
use super::Store;
use crate::error::{Error, Result};
use crate::format::entry::delta_base;
use crate::format::pack::EntryKind;
use crate::format::tree::{decode_tree, Node, NodeKind, Tree};
use crate::id::ChunkId;
use rayon::prelude::*;
use std::collections::HashMap;

/// Plain bytes fetched and verified in parallel before being written in order.
pub const READ_AHEAD: u64 = 8 << 20;

pub struct StoreReader<'a> {
    pub index: IndexReader,
    pub packs: PackReader<'a>,
}

impl<'a> StoreReader<'a> {
    pub fn new(store: &'a Store, index: &Index) -> Result<Self> {
        Ok(StoreReader {
            index: index.reader()?,
            packs: PackReader::new(store),
        })
    }

    /// The plain chunk, verified against its id.
    pub fn chunk(&self, id: &ChunkId) -> Result<Vec<u8>> {
        let loc = self.index.locate(id)?;
        let read = || {
            let stored = self.packs.read_stored(&loc)?;
            let base = match loc.entry.kind {
                EntryKind::Delta => Some(self.base(&loc, &stored)?),
                _ => None,
            };
            decode_named(&loc, &stored, base.as_deref())
        };
        read().or_else(|e| self.retry_from_fallback(&loc, e))
    }

    /// After a corrupt read of `loc`: the chunk again, each of its pieces
    /// (the entry, a delta's base) that fails its check here read from the
    /// fallback source instead. Without a fallback, the error stands.
    fn retry_from_fallback(&self, loc: &Location, err: Error) -> Result<Vec<u8>> {
        if !self.packs.has_fallback() || !matches!(err, Error::Corrupt { .. }) {
            return Err(err);
        }
        let piece = |l: &Location, base: Option<&[u8]>| {
            self.packs
                .read_stored(l)
                .and_then(|s| decode_named(l, &s, base).map(|plain| (plain, s)))
                .or_else(|_| {
                    let s = self.packs.read_from_fallback(l)?;
                    decode_named(l, &s, base).map(|plain| (plain, s))
                })
        };
        if loc.entry.kind != EntryKind::Delta {
            return piece(loc, None).map(|(plain, _)| plain);
        }
        // The delta's stored bytes name its base; read them (here, or from
        // the source if unreadable here) without decoding first.
        let stored = self
            .packs
            .read_stored(loc)
            .or_else(|_| self.packs.read_from_fallback(loc))?;
        let base_id = delta_base(&stored).ok_or_else(|| {
            Error::corrupt(format!("chunk {}", loc.entry.id), "delta without base")
        })?;
        let base_loc = self.index.locate(&base_id)?;
        let (base, _) = piece(&base_loc, None)?;
        piece(loc, Some(&base)).map(|(plain, _)| plain)
    }

    /// A delta's base: located, read and verified; never a delta itself.
    fn base(&self, loc: &Location, stored: &[u8]) -> Result<Vec<u8>> {
        let id = delta_base(stored).ok_or_else(|| {
            Error::corrupt(format!("chunk {}", loc.entry.id), "delta without base")
        })?;
        let base = self.index.locate(&id)?;
        if base.entry.kind == EntryKind::Delta {
            return Err(Error::corrupt(
                format!("chunk {}", loc.entry.id),
                "delta base is itself a delta",
            ));
        }
        decode_named(&base, &self.packs.read_stored(&base)?, None)
    }

    /// Many chunks, in order, each verified; reads are coalesced and decoding
    /// runs on all cores.
    pub fn chunks(&self, locs: &[Location]) -> Vec<Result<Vec<u8>>> {
        let stored = self.packs.read_stored_many(locs);
        let bases = self.bases(locs, &stored);
        locs.par_iter()
            .zip(stored.par_iter())
            .map(|(loc, s)| {
                let s = s.as_ref().map_err(Error::duplicate)?;
                let base = match loc.entry.kind {
                    EntryKind::Delta => {
                        let b = delta_base(s).and_then(|b| bases.get(&b));
                        Some(
                            b.expect("base fetched above")
                                .as_ref()
                                .map_err(Error::duplicate)?,
                        )
                    }
                    _ => None,
                };
                decode_named(loc, s, base.map(|b| b.as_slice()))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .zip(locs)
            .map(|(r, loc)| r.or_else(|e| self.retry_from_fallback(loc, e)))
            .collect()
    }

    /// The plain bytes of every base the delta entries among `stored` name:
    /// located, read with coalesced reads (sorted by place), decoded and
    /// verified in parallel. A base is never itself a delta.
    fn bases(
        &self,
        locs: &[Location],
        stored: &[Result<Vec<u8>>],
    ) -> HashMap<ChunkId, Result<Vec<u8>>> {
        let mut ids: Vec<ChunkId> = locs
            .iter()
            .zip(stored)
            .filter_map(|(loc, s)| match (loc.entry.kind, s) {
                (EntryKind::Delta, Ok(s)) => delta_base(s),
                _ => None,
            })
            .collect();
        ids.sort();
        ids.dedup();
        let mut out = HashMap::new();
        let mut found = Vec::new();
        for id in ids {
            match self.index.locate(&id) {
                Ok(l) if l.entry.kind == EntryKind::Delta => {
                    out.insert(
                        id,
                        Err(Error::corrupt(
                            format!("chunk {id}"),
                            "delta base is itself a delta",
                        )),
                    );
                }
                Ok(l) => found.push(l),
                Err(e) => {
                    out.insert(id, Err(e));
                }
            }
        }
        found.sort_by_key(|l| (l.pack, l.entry.offset));
        let bytes = self.packs.read_stored_many(&found);
        let decoded: Vec<(ChunkId, Result<Vec<u8>>)> = found
            .par_iter()
            .zip(bytes.par_iter())
            .map(|(l, b)| {
                (
                    l.entry.id,
                    b.as_ref()
                        .map_err(Error::duplicate)
                        .and_then(|b| decode_named(l, b, None)),
                )
            })
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

    /// Writes the plain bytes of `chunks`, in order and each verified, to
    /// `out`; reads ahead `READ_AHEAD` bytes at a time (coalesced, decoded in
    /// parallel), reporting each batch to `progress`. Returns the bytes written.
    /// Batches are written on another thread while the next one is read and
    /// decoded here (at most three are held). The writing thread never
    /// waits on rayon: this one may be a rayon worker, and a worker blocked
    /// on work that needs the pool could deadlock it.
    pub fn copy_chunks(
        &self,
        chunks: &[ChunkId],
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
            let mut rest = chunks;
            let read = (|| {
                while !rest.is_empty() {
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

    /// The chunks of the next `READ_AHEAD` bytes of `rest` (which it
    /// advances past them), read and decoded, with their plain size.
    fn next_batch(&self, rest: &mut &[ChunkId]) -> Result<(Vec<Vec<u8>>, u64)> {
        let mut locations = Vec::new();
        let mut bytes = 0;
        while let Some((id, tail)) = rest.split_first() {
            if bytes >= READ_AHEAD {
                break;
            }
            let loc = self.index.locate(id)?;
            bytes += loc.entry.raw_length as u64;
            locations.push(loc);
            *rest = tail;
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
