//! A file's content (or a database's image) read at any offset: where each
//! of its chunks starts (`Extents`, made from the index's raw lengths, no
//! chunk read but a database's unit list), and a read of a byte range that
//! fetches only the chunks it covers (coalesced, decoded on all cores).
//! What a mount reads through; it adds its cache and read-ahead.

use super::StoreReader;
use crate::error::{Error, Result};
use crate::format::tree::NodeKind;
use crate::id::ChunkId;

/// Where each chunk of one file's content lies.
pub struct Extents {
    ids: Vec<ChunkId>,
    /// `ends[i]`: the offset just past chunk `i` (increasing).
    ends: Vec<u64>,
}

impl Extents {
    /// The content's size in bytes.
    pub fn size(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// How many chunks it has.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether it has none (an empty file).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The id of chunk `i`.
    pub fn id(&self, i: usize) -> &ChunkId {
        &self.ids[i]
    }

    /// The ids of chunks `range`.
    pub fn ids(&self, range: std::ops::Range<usize>) -> &[ChunkId] {
        &self.ids[range]
    }

    /// The chunk holding byte `offset` (< size).
    pub fn chunk_at(&self, offset: u64) -> usize {
        self.ends.partition_point(|&end| end <= offset)
    }

    /// Where chunk `i` starts.
    pub fn start(&self, i: usize) -> u64 {
        if i == 0 {
            0
        } else {
            self.ends[i - 1]
        }
    }

    /// Where chunk `i` ends (exclusive).
    pub fn end(&self, i: usize) -> u64 {
        self.ends[i]
    }

    /// The end (exclusive) of the chunks from `i` that a read of `bytes`
    /// from chunk `i`'s start covers.
    pub fn window(&self, i: usize, bytes: u64) -> usize {
        let limit = self.start(i) + bytes;
        i + 1 + self.ends[i + 1..].partition_point(|&end| end <= limit)
    }
}

impl StoreReader {
    /// The extents of a file or database node whose size is `size`.
    pub fn extents(&self, kind: &NodeKind, size: u64) -> Result<Extents> {
        let ids: Vec<ChunkId> = match kind {
            NodeKind::File { chunks } => chunks.clone(),
            _ => {
                let (_, list) = kind.database().ok_or_else(|| {
                    Error::Invalid("only a file or a database has content".into())
                })?;
                self.units(list).collect::<Result<_>>()?
            }
        };
        let mut ends = Vec::with_capacity(ids.len());
        let mut at = 0u64;
        for id in &ids {
            at += self.locate(id)?.entry.raw_length as u64;
            ends.push(at);
        }
        if at != size {
            return Err(Error::corrupt(
                "a file's chunk list",
                format!("its chunks hold {at} bytes, its node says {size}"),
            ));
        }
        Ok(Extents { ids, ends })
    }

    /// The plain chunks `ids`, each verified, in order (reads coalesced).
    pub fn chunks_by_id(&self, ids: &[ChunkId]) -> Result<Vec<Vec<u8>>> {
        let locs = ids
            .iter()
            .map(|id| self.locate(id))
            .collect::<Result<Vec<_>>>()?;
        self.chunks(&locs).into_iter().collect()
    }

    /// Up to `len` bytes of the content at `offset` (fewer at its end).
    pub fn read_at(&self, extents: &Extents, offset: u64, len: u64) -> Result<Vec<u8>> {
        let end = extents.size().min(offset.saturating_add(len));
        if offset >= end {
            return Ok(Vec::new());
        }
        let (first, last) = (extents.chunk_at(offset), extents.chunk_at(end - 1));
        let data = self.chunks_by_id(extents.ids(first..last + 1))?;
        let mut out = Vec::with_capacity((end - offset) as usize);
        for (i, d) in (first..=last).zip(data) {
            let start = extents.start(i);
            let from = (offset.max(start) - start) as usize;
            let to = (end.min(extents.end(i)) - start) as usize;
            out.extend_from_slice(&d[from..to]);
        }
        Ok(out)
    }
}
