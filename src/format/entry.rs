//! Entry codec: a plain chunk to the bytes a pack stores and back. Every
//! decoded chunk is checked against its id, so corrupt or mismatched data is
//! an error, never output.

use crate::error::{Error, Result};
use crate::format::pack::{EntryKind, PackEntry};
use crate::id::ChunkId;
use std::cell::RefCell;

/// zstd level for deltas of large images (DESIGN.md, "Page units").
pub(crate) const DELTA_LEVEL: i32 = 1;
/// zstd level for deltas of small images, where its time does not count.
pub(crate) const SMALL_DELTA_LEVEL: i32 = 3;
/// The match finder's hash table for deltas: 2^16 slots for the 128 KiB a
/// delta sees (base and chunk). Level 1 picks 2^13 for inputs this small, and
/// its collisions lose matches: on `npm1g` a day's deltas are 7.8 % smaller
/// (19.20 -> 17.71 MB) for 8 % more delta time (DESIGN.md, "Parameters").
/// The decoder does not depend on it.
const DELTA_HASH_LOG: u32 = 16;
/// The hash table for a delta against several bases (up to 320 KiB of
/// prefix): 2^18 slots, measured with `scripts/multi_base.py`.
const MULTI_HASH_LOG: u32 = 18;
/// Bases one delta entry names at most (`EntryKind::Deltas`): its previous
/// version and up to four units it moved content from (DESIGN.md, "Delta
/// chains"; more bases found nothing more on the npm churn).
pub(crate) const MAX_BASES: usize = 5;
/// Deltas a writer chains before a chunk stored in full (DESIGN.md, "Delta
/// chains"): a delta's base may itself be a delta, this many deep at most
/// down its previous versions, for a take's units (a day apart).
pub const MAX_CHAIN: usize = 4;
/// The same for a point's units, a second apart (`watch`): each version
/// costs its change, and a longer chain stores fewer drifted deltas.
pub const POINT_CHAIN: usize = 8;
/// How much deeper than its chain a writer lets a chunk's longest path of
/// deltas reach, through the other bases of a delta against several
/// (DESIGN.md, "Delta chains"); `POINT_CHAIN + EXTRA_DEPTH` stays within
/// `MAX_READ_CHAIN`.
pub const EXTRA_DEPTH: usize = 4;
/// Deltas a reader follows before giving up: a longer run (a cycle among
/// damaged packs) is damage, reported, never followed forever.
pub(crate) const MAX_READ_CHAIN: usize = 16;

thread_local! {
    // One zstd context per thread: creating one per chunk costs more than
    // compressing a 4 KiB page.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
    // Delta compression context: the base is referenced as a prefix per chunk.
    static DELTA_CCTX: RefCell<Option<zstd::zstd_safe::CCtx<'static>>> =
        const { RefCell::new(None) };
    static DELTA_DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// Encodes a plain chunk as a pack entry: zstd unless that does not shrink it.
pub fn encode_entry(plain: &[u8], level: i32) -> (EntryKind, Vec<u8>) {
    let z = COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().is_none_or(|(l, _)| *l != level) {
            *c = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        c.as_mut()?.1.compress(plain).ok()
    });
    match z {
        Some(z) if z.len() < plain.len() => (EntryKind::Zstd, z),
        _ => (EntryKind::Raw, plain.to_vec()),
    }
}

/// Like `encode_with_base` for a base that is the root of a full chain,
/// which the chunk drifts further from at each version: the delta is kept
/// only under a quarter of the chunk compressed alone; otherwise the chunk
/// is stored whole, and its next versions are small deltas against it.
pub(crate) fn encode_refreshing(
    plain: &[u8],
    base_id: &ChunkId,
    base: &[u8],
    delta_level: i32,
    level: i32,
) -> (EntryKind, Vec<u8>) {
    let full = encode_entry(plain, level);
    match delta_frame(plain, base, delta_level) {
        Some(frame) if (32 + frame.len()) * 4 < full.1.len() => {
            (EntryKind::Delta, delta_entry(base_id, &frame))
        }
        _ => full,
    }
}

/// A delta entry's bytes: its base's id, then the zstd frame.
fn delta_entry(base_id: &ChunkId, frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + frame.len());
    out.extend_from_slice(&base_id.0);
    out.extend_from_slice(frame);
    out
}

/// `plain` as a delta against several bases (`ids`, 1 to `MAX_BASES`, whose
/// plain bytes concatenated in that order are `prefix`): a `Delta` entry
/// for one base, a `Deltas` entry for more. None when zstd fails.
pub(crate) fn encode_with_bases(
    plain: &[u8],
    ids: &[ChunkId],
    prefix: &[u8],
    level: i32,
) -> Option<(EntryKind, Vec<u8>)> {
    assert!(
        !ids.is_empty() && ids.len() <= MAX_BASES,
        "1 to MAX_BASES bases"
    );
    let frame = delta_frame_with(plain, prefix, level, MULTI_HASH_LOG)?;
    if let [id] = ids {
        return Some((EntryKind::Delta, delta_entry(id, &frame)));
    }
    let mut out = Vec::with_capacity(1 + 32 * ids.len() + frame.len());
    out.push(ids.len() as u8);
    for id in ids {
        out.extend_from_slice(&id.0);
    }
    out.extend_from_slice(&frame);
    Some((EntryKind::Deltas, out))
}

/// Encodes `plain` as a delta against `base` (another chunk's plain bytes) when
/// that is smaller than encoding it alone.
pub(crate) fn encode_with_base(
    plain: &[u8],
    base_id: &ChunkId,
    base: &[u8],
    delta_level: i32,
    level: i32,
) -> (EntryKind, Vec<u8>) {
    let frame = delta_frame(plain, base, delta_level);
    let Some(frame) = frame else {
        return encode_entry(plain, level);
    };
    let out = delta_entry(base_id, &frame);
    // Deltas drift as a unit moves away from its base, and a delta makes its
    // chunk depend on another: it is kept when under a quarter of the plain
    // chunk (the common case, which then costs no second compression) or
    // smaller than the chunk encoded alone. A zero chunk compresses alone to
    // less than any delta and is never one.
    if out.len() * 4 < plain.len() && plain.iter().any(|b| *b != 0) {
        return (EntryKind::Delta, out);
    }
    let full = encode_entry(plain, level);
    if out.len() < full.1.len() {
        (EntryKind::Delta, out)
    } else {
        full
    }
}

/// `plain` compressed with `base` as zstd's prefix (a single-use raw
/// dictionary, decoded like one): the base's tables are built once, in
/// place, without the dictionary object `set_dictionary` makes per call.
fn delta_frame(plain: &[u8], base: &[u8], level: i32) -> Option<Vec<u8>> {
    delta_frame_with(plain, base, level, DELTA_HASH_LOG)
}

fn delta_frame_with(plain: &[u8], base: &[u8], level: i32, hash_log: u32) -> Option<Vec<u8>> {
    use zstd::zstd_safe::{CCtx, CParameter, ResetDirective};
    DELTA_CCTX.with(|c| {
        let mut c = c.borrow_mut();
        let c = c.get_or_insert_with(CCtx::create);
        c.set_parameter(CParameter::CompressionLevel(level)).ok()?;
        c.set_parameter(CParameter::HashLog(hash_log)).ok()?;
        // SAFETY: zstd keeps a prefix for one frame only, and the session is
        // reset below before `base` can go away, whether or not the frame
        // completed: the context never holds the reference past this call.
        let prefix: &'static [u8] = unsafe { std::mem::transmute::<&[u8], &'static [u8]>(base) };
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(plain.len()));
        let done = c
            .ref_prefix(prefix)
            .and_then(|_| c.compress2(&mut out, plain));
        c.reset(ResetDirective::SessionOnly).ok()?;
        done.ok().map(|_| out)
    })
}

/// The base chunk a single-base delta entry needs.
fn delta_base(stored: &[u8]) -> Option<ChunkId> {
    Some(ChunkId(stored.get(..32)?.try_into().ok()?))
}

/// The chunks an entry of `kind` is decoded with, in their order in its
/// dictionary: none for a chunk stored in full. None when a delta's bytes
/// do not hold a well-formed list of bases (damage).
pub(crate) fn bases_of(kind: EntryKind, stored: &[u8]) -> Option<Vec<ChunkId>> {
    match kind {
        EntryKind::Raw | EntryKind::Zstd => Some(Vec::new()),
        EntryKind::Delta => Some(vec![delta_base(stored)?]),
        EntryKind::Deltas => {
            let n = *stored.first()? as usize;
            let ids = stored
                .get(1..1 + 32 * n)
                .filter(|_| (2..=MAX_BASES).contains(&n))?;
            Some(
                ids.chunks(32)
                    .map(|c| ChunkId(c.try_into().expect("32 bytes")))
                    .collect(),
            )
        }
    }
}

/// The zstd frame of a delta entry (after its list of bases).
fn frame_of(kind: EntryKind, stored: &[u8]) -> Option<&[u8]> {
    match kind {
        EntryKind::Delta => stored.get(32..),
        _ => stored.get(1 + 32 * *stored.first()? as usize..),
    }
}

fn decompress(stored: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        d.as_mut().expect("just set").decompress(stored, capacity)
    })
}

fn decompress_with_base(frame: &[u8], base: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DELTA_DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        let d = d.as_mut().expect("just set");
        d.set_dictionary(base)?;
        d.decompress(frame, capacity)
    })
}

/// Decodes an entry's bytes back to the plain chunk and checks it against its
/// id. A delta needs its base's plain bytes (already verified by the caller).
pub(crate) fn decode_entry(
    entry: &PackEntry,
    stored: &[u8],
    base: Option<&[u8]>,
) -> Result<Vec<u8>> {
    let plain = decode_link(entry, stored, base)?;
    if ChunkId::of(&plain) != entry.id {
        return Err(Error::corrupt(
            format!("chunk {}", entry.id),
            "content does not match its id",
        ));
    }
    Ok(plain)
}

/// Decodes an entry's bytes without hashing the result: only for a base
/// inside a chain of deltas whose last chunk `decode_entry` checks (a wrong
/// base makes that check fail, and the caller then checks every link to
/// name the bad one). The length is still checked.
pub(crate) fn decode_link(
    entry: &PackEntry,
    stored: &[u8],
    base: Option<&[u8]>,
) -> Result<Vec<u8>> {
    let corrupt = |d: String| Error::corrupt(format!("chunk {}", entry.id), d);
    let plain = match entry.kind {
        EntryKind::Raw => stored.to_vec(),
        EntryKind::Zstd => {
            decompress(stored, entry.raw_length as usize).map_err(|e| corrupt(e.to_string()))?
        }
        EntryKind::Delta | EntryKind::Deltas => {
            let base = base.ok_or_else(|| corrupt("delta decoded without its base".into()))?;
            let frame =
                frame_of(entry.kind, stored).ok_or_else(|| corrupt("delta without base".into()))?;
            decompress_with_base(frame, base, entry.raw_length as usize)
                .map_err(|e| corrupt(e.to_string()))?
        }
    };
    if plain.len() != entry.raw_length as usize {
        return Err(corrupt("content does not match its id".into()));
    }
    Ok(plain)
}

#[cfg(test)]
mod tests;
