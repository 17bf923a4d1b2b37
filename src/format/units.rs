//! A database image's unit list: the ids of its units in order, stored as
//! chunks of their own (`LIST_IDS` ids a chunk, the last one shorter) so that
//! no tree, and no take, holds a large database's whole list. Units never
//! move, so list chunk `k` always holds the ids of units `k * LIST_IDS ..`:
//! an unchanged stretch of the image gives the same list chunk again, and the
//! parent's list chunk `k` is the natural delta base of the new one.
//!
//! Pure: `Units` reads list chunks through a `fetch` function it is given.

use crate::error::{Error, Result};
use crate::id::ChunkId;

/// Unit ids a list chunk holds: 16 KiB of ids, which name 32 MiB of image
/// at 64 KiB units.
pub(crate) const LIST_IDS: usize = 512;

/// How a database node names its units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitList<'a> {
    /// The unit ids themselves, in the tree (trees of version 1).
    Inline(&'a [ChunkId]),
    /// The chunks of the list of unit ids (trees of version 2).
    Listed(&'a [ChunkId]),
}

impl<'a> UnitList<'a> {
    /// `chunks` as a node names them: list chunks if `listed`.
    pub fn new(listed: bool, chunks: &'a [ChunkId]) -> Self {
        if listed {
            UnitList::Listed(chunks)
        } else {
            UnitList::Inline(chunks)
        }
    }

    pub(crate) fn is_listed(&self) -> bool {
        matches!(self, UnitList::Listed(_))
    }

    /// The chunks the node names directly: the units, or the list chunks.
    pub fn chunks(&self) -> &'a [ChunkId] {
        match self {
            UnitList::Inline(c) | UnitList::Listed(c) => c,
        }
    }
}

/// A list chunk's plain bytes: the ids, 32 bytes each.
pub(crate) fn encode_ids(ids: &[ChunkId]) -> Vec<u8> {
    ids.iter().flat_map(|id| id.0).collect()
}

/// The ids of list chunk `id`; every list chunk but the last holds exactly
/// `LIST_IDS`.
pub(crate) fn decode_ids(id: &ChunkId, bytes: &[u8], last: bool) -> Result<Vec<ChunkId>> {
    let n = bytes.len() / 32;
    let whole = bytes.len().is_multiple_of(32) && n > 0 && n <= LIST_IDS;
    if !whole || (!last && n != LIST_IDS) {
        return Err(Error::corrupt(
            format!("unit list chunk {id}"),
            format!("{} bytes is not a list of unit ids", bytes.len()),
        ));
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|b| ChunkId(b.try_into().expect("32 bytes")))
        .collect())
}

/// A place in a `UnitList`: yields its unit ids in order, a listed one read
/// a list chunk at a time through the `fetch` given to each step (plain
/// bytes, verified against the id), so a caller can lend it what it also
/// writes with.
pub(crate) struct UnitCursor<'a> {
    list: UnitList<'a>,
    /// Next list chunk to read (listed), or next id (inline).
    next: usize,
    /// The ids of the list chunk read last, reversed (popped in order).
    ids: Vec<ChunkId>,
}

impl<'a> UnitCursor<'a> {
    pub fn new(list: UnitList<'a>) -> Self {
        UnitCursor {
            list,
            next: 0,
            ids: Vec::new(),
        }
    }

    /// The next unit id; after an error, none.
    pub fn step(
        &mut self,
        fetch: impl FnOnce(&ChunkId) -> Result<Vec<u8>>,
    ) -> Option<Result<ChunkId>> {
        match self.list {
            UnitList::Inline(ids) => {
                let id = ids.get(self.next).copied();
                self.next += 1;
                id.map(Ok)
            }
            UnitList::Listed(list) => {
                if self.ids.is_empty() {
                    let chunk = list.get(self.next)?;
                    self.next += 1;
                    let last = self.next == list.len();
                    match fetch(chunk).and_then(|b| decode_ids(chunk, &b, last)) {
                        Ok(mut ids) => {
                            ids.reverse();
                            self.ids = ids;
                        }
                        Err(e) => {
                            self.next = list.len(); // the error ends the list
                            return Some(Err(e));
                        }
                    }
                }
                self.ids.pop().map(Ok)
            }
        }
    }
}

/// The unit ids of a `UnitList` as an iterator that owns its `fetch`.
pub struct Units<'a, F> {
    cursor: UnitCursor<'a>,
    fetch: F,
}

impl<'a, F: FnMut(&ChunkId) -> Result<Vec<u8>>> Units<'a, F> {
    pub fn new(list: UnitList<'a>, fetch: F) -> Self {
        Units {
            cursor: UnitCursor::new(list),
            fetch,
        }
    }
}

impl<F: FnMut(&ChunkId) -> Result<Vec<u8>>> Iterator for Units<'_, F> {
    type Item = Result<ChunkId>;

    fn next(&mut self) -> Option<Result<ChunkId>> {
        let fetch = &mut self.fetch;
        self.cursor.step(|id| fetch(id))
    }
}

/// Cuts a stream of unit ids into list chunks, handing each to `put` (which
/// stores it, with the parent's list chunk at its place as a delta base,
/// and returns its id).
pub(crate) struct ListWriter {
    ids: Vec<ChunkId>,
    chunks: Vec<ChunkId>,
}

impl ListWriter {
    pub fn new() -> Self {
        ListWriter {
            ids: Vec::with_capacity(LIST_IDS),
            chunks: Vec::new(),
        }
    }

    /// Adds the next unit id; a full list chunk goes to `put`.
    pub fn push(
        &mut self,
        id: ChunkId,
        put: impl FnOnce(Vec<u8>, usize) -> Result<ChunkId>,
    ) -> Result<()> {
        self.ids.push(id);
        if self.ids.len() == LIST_IDS {
            self.cut(put)?;
        }
        Ok(())
    }

    /// The list's chunks, the short last one handed to `put` first.
    pub fn finish(
        mut self,
        put: impl FnOnce(Vec<u8>, usize) -> Result<ChunkId>,
    ) -> Result<Vec<ChunkId>> {
        if !self.ids.is_empty() {
            self.cut(put)?;
        }
        Ok(self.chunks)
    }

    fn cut(&mut self, put: impl FnOnce(Vec<u8>, usize) -> Result<ChunkId>) -> Result<()> {
        let bytes = encode_ids(&self.ids);
        self.ids.clear();
        let id = put(bytes, self.chunks.len())?;
        self.chunks.push(id);
        Ok(())
    }
}

impl Default for ListWriter {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn ids(n: usize) -> Vec<ChunkId> {
        (0..n as u32)
            .map(|i| ChunkId::of(&i.to_le_bytes()))
            .collect()
    }

    /// Writes `units` as a list into `stored`; returns the list chunks.
    fn write(units: &[ChunkId], stored: &mut HashMap<ChunkId, Vec<u8>>) -> Vec<ChunkId> {
        let mut put = |bytes: Vec<u8>, _: usize| {
            let id = ChunkId::of(&bytes);
            stored.insert(id, bytes);
            Ok(id)
        };
        let mut w = ListWriter::new();
        for id in units {
            w.push(*id, &mut put).unwrap();
        }
        w.finish(&mut put).unwrap()
    }

    proptest! {
        // Any number of units comes back in order through its list chunks.
        #[test]
        fn a_list_reads_back_as_written(n in 0usize..3000) {
            let units = ids(n);
            let mut stored = HashMap::new();
            let list = write(&units, &mut stored);
            prop_assert_eq!(list.len(), n.div_ceil(LIST_IDS));
            let fetch = |id: &ChunkId| Ok(stored[id].clone());
            let back: Vec<ChunkId> = Units::new(UnitList::Listed(&list), fetch)
                .collect::<Result<_>>()
                .unwrap();
            prop_assert_eq!(back, units.clone());
            let inline: Vec<ChunkId> = Units::new(UnitList::Inline(&units), |_: &ChunkId| unreachable!())
                .collect::<Result<_>>()
                .unwrap();
            prop_assert_eq!(inline, units);
        }
    }

    // Units never move: a change in one unit changes only its list chunk.
    #[test]
    fn an_unchanged_stretch_gives_the_same_list_chunks() {
        let mut units = ids(LIST_IDS * 3 + 5);
        let mut stored = HashMap::new();
        let before = write(&units, &mut stored);
        units[LIST_IDS + 7] = ChunkId::of(b"changed");
        let after = write(&units, &mut stored);
        assert_eq!(before[0], after[0]);
        assert_ne!(before[1], after[1]);
        assert_eq!(before[2..], after[2..]);
    }

    // A list chunk of the wrong length is corrupt, never read as units, and
    // the error ends the list.
    #[test]
    fn a_bad_list_chunk_is_corrupt() {
        let id = ChunkId::of(b"x");
        assert!(decode_ids(&id, &[0; 33], true).is_err());
        assert!(decode_ids(&id, &[], true).is_err());
        assert!(
            decode_ids(&id, &[0; 64], false).is_err(),
            "short but not last"
        );
        assert_eq!(decode_ids(&id, &[0; 64], true).unwrap().len(), 2);
        let list = [id, id];
        let mut units = Units::new(UnitList::Listed(&list), |_: &ChunkId| Ok(vec![0; 31]));
        assert!(units.next().unwrap().is_err());
        assert!(units.next().is_none());
    }
}
