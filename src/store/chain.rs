//! Delta chains read back: a chunk stored as a delta is decoded with its
//! bases (one, or several for a `Deltas` entry), which may be deltas too,
//! down to chunks stored in full. The chunks one chunk needs form a small
//! graph without cycles (each base was durable before the delta that
//! names it was written); a path longer than `MAX_READ_CHAIN`, or more
//! than `MAX_READ_ENTRIES` chunks, is damage, reported, never followed.

use super::index::{IndexReader, Location};
use super::packs::{decode_link_named, decode_named, PackReader};
use crate::error::{Error, Result};
use crate::format::entry::{bases_of, EXTRA_DEPTH, MAX_READ_CHAIN};
use crate::id::ChunkId;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

/// Chunks one chunk may need to be decoded, itself included, before the
/// reader calls it damage (a writer stays far below: `dedup::MAX_CLOSURE`).
pub(crate) const MAX_READ_ENTRIES: usize = 512;

/// A chunk's plain bytes through its chain of deltas, each piece read and
/// verified, with the chain's depth (0 for a chunk stored in full).
pub(crate) fn resolve(
    index: &IndexReader,
    packs: &PackReader,
    loc: &Location,
) -> Result<(Vec<u8>, usize)> {
    let chain = read_chain(index, packs, loc)?;
    Ok((decode_chain(&chain)?, depth(&chain)?))
}

/// The stored bytes of `loc` and of every base it needs, each once: every
/// base before each chunk that names it, `loc` itself last.
pub(crate) fn read_chain(
    index: &IndexReader,
    packs: &PackReader,
    loc: &Location,
) -> Result<Vec<(Location, Vec<u8>)>> {
    closure(loc.clone(), |id| index.locate(id), |l| packs.read_stored(l))
}

/// `read_chain` with the places and bytes from `locate` and `read`.
pub(crate) fn closure(
    loc: Location,
    mut locate: impl FnMut(&ChunkId) -> Result<Location>,
    mut read: impl FnMut(&Location) -> Result<Vec<u8>>,
) -> Result<Vec<(Location, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut seen = HashSet::from([loc.entry.id]);
    visit(loc, 0, &mut locate, &mut read, &mut seen, &mut out)?;
    Ok(out)
}

fn visit(
    loc: Location,
    depth: usize,
    locate: &mut impl FnMut(&ChunkId) -> Result<Location>,
    read: &mut impl FnMut(&Location) -> Result<Vec<u8>>,
    seen: &mut HashSet<ChunkId>,
    out: &mut Vec<(Location, Vec<u8>)>,
) -> Result<()> {
    if depth > MAX_READ_CHAIN || seen.len() > MAX_READ_ENTRIES {
        return Err(too_long(&loc.entry.id));
    }
    let stored = read(&loc)?;
    for b in bases_named(&loc, &stored)? {
        if seen.insert(b) {
            visit(locate(&b)?, depth + 1, locate, read, seen, out)?;
        }
    }
    out.push((loc, stored));
    Ok(())
}

/// The bases an entry's stored bytes name (none for a chunk in full).
pub(crate) fn bases_named(loc: &Location, stored: &[u8]) -> Result<Vec<ChunkId>> {
    bases_of(loc.entry.kind, stored)
        .ok_or_else(|| Error::corrupt(format!("chunk {}", loc.entry.id), "delta without base"))
}

/// The length of the longest path of deltas in a `read_chain` result, from
/// its last chunk down to a chunk stored in full.
pub(crate) fn depth(chain: &[(Location, Vec<u8>)]) -> Result<usize> {
    let mut depth: HashMap<ChunkId, usize> = HashMap::new();
    let mut last = 0;
    for (l, s) in chain {
        last = bases_named(l, s)?
            .iter()
            .map(|b| depth.get(b).map_or(0, |d| d + 1))
            .max()
            .unwrap_or(0);
        depth.insert(l.entry.id, last);
    }
    Ok(last)
}

/// The plain bytes of a chain's last chunk, decoded from its bases up and
/// checked against its id. Only that chunk is hashed (a wrong base makes
/// its check fail); on any failure every link is decoded again and
/// checked, so the error names the piece that is bad.
pub(crate) fn decode_chain(chain: &[(Location, Vec<u8>)]) -> Result<Vec<u8>> {
    decode_chain_with(chain, decode_link_named).or_else(|_| decode_chain_with(chain, decode_named))
}

type Decode = fn(&Location, &[u8], Option<&[u8]>) -> Result<Vec<u8>>;

fn decode_chain_with(chain: &[(Location, Vec<u8>)], link: Decode) -> Result<Vec<u8>> {
    let mut plains: HashMap<ChunkId, Vec<u8>> = HashMap::new();
    for (i, (l, s)) in chain.iter().enumerate() {
        let decode = if i + 1 == chain.len() {
            decode_named
        } else {
            link
        };
        let bases = bases_named(l, s)?;
        let plain = decode(l, s, dictionary(l, &bases, |b| plains.get(b))?.as_deref())?;
        plains.insert(l.entry.id, plain);
    }
    let last = &chain.last().expect("a chain has an entry").0.entry.id;
    Ok(plains.remove(last).expect("just decoded"))
}

/// The dictionary a delta is decoded with: its bases' plain bytes, from
/// `get`, concatenated in the entry's order. None for a chunk in full.
pub(crate) fn dictionary<'a>(
    loc: &Location,
    bases: &[ChunkId],
    get: impl Fn(&ChunkId) -> Option<&'a Vec<u8>>,
) -> Result<Option<Cow<'a, [u8]>>> {
    let missing = || Error::corrupt(format!("chunk {}", loc.entry.id), "delta without base");
    match bases {
        [] => Ok(None),
        [b] => Ok(Some(Cow::Borrowed(get(b).ok_or_else(missing)?))),
        many => {
            let mut out = Vec::with_capacity(many.len() * 65536);
            for b in many {
                out.extend_from_slice(get(b).ok_or_else(missing)?);
            }
            Ok(Some(Cow::Owned(out)))
        }
    }
}

pub(super) fn too_long(id: &ChunkId) -> Error {
    Error::corrupt(
        format!("chunk {id}"),
        format!(
            "its chain of deltas is longer than {MAX_READ_CHAIN} or needs more than {MAX_READ_ENTRIES} chunks (a cycle?)"
        ),
    )
}

/// An entry decoded by `decode` with its bases (for a delta) from `bases`.
pub(super) fn decode_with(
    loc: &Location,
    stored: &Result<Vec<u8>>,
    bases: &HashMap<ChunkId, Result<Vec<u8>>>,
    decode: Decode,
) -> Result<Vec<u8>> {
    let s = stored.as_ref().map_err(Error::duplicate)?;
    let ids = bases_named(loc, s)?;
    for b in &ids {
        if let Some(Err(e)) = bases.get(b) {
            return Err(Error::duplicate(e));
        }
    }
    let dict = dictionary(loc, &ids, |b| bases.get(b).and_then(|r| r.as_ref().ok()))?;
    decode(loc, s, dict.as_deref())
}

/// Whether chunk `id`, `depth` deltas down, reaches indexed rows stored in
/// full along every path of its bases; `known` memoizes chunks decided.
pub(super) fn decodable(
    id: &ChunkId,
    depth: usize,
    bases: &HashMap<ChunkId, Option<Vec<ChunkId>>>,
    reader: &IndexReader,
    known: &mut HashMap<ChunkId, bool>,
) -> Result<bool> {
    if let Some(k) = known.get(id) {
        return Ok(*k);
    }
    let ok = match bases.get(id) {
        None => reader.contains(id)?,
        Some(None) => false,
        Some(Some(ids)) if depth < MAX_READ_CHAIN => {
            let mut all = true;
            for b in ids {
                all = all && decodable(b, depth + 1, bases, reader, known)?;
            }
            all
        }
        Some(Some(_)) => false,
    };
    known.insert(*id, ok);
    Ok(ok)
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
    /// The longest path of deltas below it (0: stored in full).
    pub depth: usize,
    /// Every chunk decoding it reads, itself included.
    pub needs: Vec<ChunkId>,
}

impl super::StoreReader {
    /// Whether the index names chunk `id`.
    pub fn has(&self, id: &ChunkId) -> Result<bool> {
        self.index.contains(id)
    }

    /// The delta base for a chunk whose previous version is `candidate`:
    /// the candidate itself while the deltas below it down its first bases
    /// (its own previous versions) are fewer than `max_chain` and its
    /// longest path fewer than `max_chain + EXTRA_DEPTH` (a delta then costs about the
    /// change since that version), else the chunk stored in full at the
    /// root of its first bases. None when the candidate is not indexed
    /// (pending in this take, or unknown): then the chunk is stored in
    /// full, so a base is always durable and indexed before a delta names it.
    pub(crate) fn delta_base(&self, candidate: &ChunkId, max_chain: usize) -> Result<Option<Base>> {
        let Some(loc) = self.index.get(candidate)? else {
            return Ok(None);
        };
        let chain = read_chain(&self.index, &self.packs, &loc)?;
        let by_id: HashMap<ChunkId, &(Location, Vec<u8>)> =
            chain.iter().map(|e| (e.0.entry.id, e)).collect();
        let (mut root, mut steps) = (chain.last().expect("a chain has an entry"), 0);
        while let Some(first) = bases_named(&root.0, &root.1)?.first() {
            (root, steps) = (by_id[first], steps + 1);
        }
        let depth = depth(&chain)?;
        if steps < max_chain && depth < max_chain + EXTRA_DEPTH {
            return Ok(Some(Base {
                id: *candidate,
                plain: decode_chain(&chain)?,
                rebased: false,
                depth,
                needs: chain.iter().map(|(l, _)| l.entry.id).collect(),
            }));
        }
        Ok(Some(Base {
            id: root.0.entry.id,
            plain: decode_chain(std::slice::from_ref(root))?,
            rebased: true,
            depth: 0,
            needs: vec![root.0.entry.id],
        }))
    }
}
