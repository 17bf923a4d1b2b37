//! Delta chains read back: a chunk stored as a delta is decoded with its
//! base, which may be a delta too, down to a chunk stored in full (at most
//! `MAX_READ_CHAIN` deep; a longer chain, a cycle among damaged packs, is
//! reported corrupt, never followed forever).

use super::index::{IndexReader, Location};
use super::packs::{decode_link_named, decode_named, PackReader};
use crate::error::{Error, Result};
use crate::format::entry::{delta_base, MAX_READ_CHAIN};
use crate::format::pack::EntryKind;
use crate::id::ChunkId;
use std::collections::HashMap;

/// A chunk's plain bytes through its chain of deltas, each piece read and
/// verified, with the chain's length (0 for a chunk stored in full).
pub(crate) fn resolve(
    index: &IndexReader,
    packs: &PackReader,
    loc: &Location,
) -> Result<(Vec<u8>, usize)> {
    let chain = read_chain(index, packs, loc)?;
    Ok((decode_chain(&chain)?, chain.len() - 1))
}

/// The stored bytes of `loc` and of each base down its chain, the chunk
/// stored in full last.
pub(crate) fn read_chain(
    index: &IndexReader,
    packs: &PackReader,
    loc: &Location,
) -> Result<Vec<(Location, Vec<u8>)>> {
    let mut chain = vec![(loc.clone(), packs.read_stored(loc)?)];
    while let Some((l, s)) = chain
        .last()
        .filter(|(l, _)| l.entry.kind == EntryKind::Delta)
    {
        let base = index.locate(&base_of(l, s, chain.len())?)?;
        let stored = packs.read_stored(&base)?;
        chain.push((base, stored));
    }
    Ok(chain)
}

/// The plain bytes of a chain's first chunk, decoded from its last and
/// checked against its id. Only that chunk is hashed (a wrong base makes
/// its check fail); on any failure every link is decoded again and
/// checked, so the error names the piece that is bad.
pub(crate) fn decode_chain(chain: &[(Location, Vec<u8>)]) -> Result<Vec<u8>> {
    decode_chain_with(chain, decode_link_named).or_else(|_| decode_chain_with(chain, decode_named))
}

type Decode = fn(&Location, &[u8], Option<&[u8]>) -> Result<Vec<u8>>;

fn decode_chain_with(chain: &[(Location, Vec<u8>)], link: Decode) -> Result<Vec<u8>> {
    let mut plain = None;
    for (i, (l, s)) in chain.iter().enumerate().rev() {
        let decode = if i == 0 { decode_named } else { link };
        plain = Some(decode(l, s, plain.as_deref())?);
    }
    Ok(plain.expect("a chain has an entry"))
}

/// The base a delta entry's stored bytes name, `depth` deltas down a chain.
pub(super) fn base_of(loc: &Location, stored: &[u8], depth: usize) -> Result<ChunkId> {
    if depth > MAX_READ_CHAIN {
        return Err(too_long(&loc.entry.id));
    }
    delta_base(stored)
        .ok_or_else(|| Error::corrupt(format!("chunk {}", loc.entry.id), "delta without base"))
}

pub(super) fn too_long(id: &ChunkId) -> Error {
    Error::corrupt(
        format!("chunk {id}"),
        format!("its chain of deltas is longer than {MAX_READ_CHAIN} (a cycle?)"),
    )
}

/// An entry decoded by `decode` with its base (for a delta) from `bases`.
pub(super) fn decode_with(
    loc: &Location,
    stored: &Result<Vec<u8>>,
    bases: &HashMap<ChunkId, Result<Vec<u8>>>,
    decode: Decode,
) -> Result<Vec<u8>> {
    let s = stored.as_ref().map_err(Error::duplicate)?;
    let base = match loc.entry.kind {
        EntryKind::Delta => {
            let b = delta_base(s).and_then(|b| bases.get(&b)).ok_or_else(|| {
                Error::corrupt(format!("chunk {}", loc.entry.id), "delta without base")
            })?;
            Some(b.as_ref().map_err(Error::duplicate)?.as_slice())
        }
        _ => None,
    };
    decode(loc, s, base)
}

/// The base a new version of a chunk is stored as a delta against.
pub struct Base {
    /// The base chunk.
    pub id: ChunkId,
    /// Its plain bytes.
    pub plain: Vec<u8>,
    /// It is the root of the candidate's chain, which was full (not the
    /// chunk's previous version).
    pub rebased: bool,
}

impl super::StoreReader {
    /// Whether the index names chunk `id`.
    pub fn has(&self, id: &ChunkId) -> Result<bool> {
        self.index.contains(id)
    }

    /// The delta base for a chunk whose previous version is `candidate`:
    /// the candidate itself while its chain of deltas is shorter than
    /// `MAX_CHAIN` (a delta then costs about the change since that
    /// version), else the chunk stored in full at its chain's root. None
    /// when the candidate is not indexed (pending in this take, or
    /// unknown): then the chunk is stored in full, so a base is always
    /// durable and indexed before a delta names it.
    pub(crate) fn delta_base(&self, candidate: &ChunkId) -> Result<Option<Base>> {
        let Some(loc) = self.index.get(candidate)? else {
            return Ok(None);
        };
        let chain = read_chain(&self.index, &self.packs, &loc)?;
        if chain.len() <= crate::format::entry::MAX_CHAIN {
            let plain = decode_chain(&chain)?;
            return Ok(Some(Base {
                id: *candidate,
                plain,
                rebased: false,
            }));
        }
        let root = chain.last().expect("a chain has an entry");
        Ok(Some(Base {
            id: root.0.entry.id,
            plain: decode_chain(std::slice::from_ref(root))?,
            rebased: true,
        }))
    }
}
