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
/// Deltas a writer chains before a chunk stored in full (DESIGN.md, "Delta
/// chains"): a delta's base may itself be a delta, this many deep at most.
pub const MAX_CHAIN: usize = 4;
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
    use zstd::zstd_safe::{CCtx, CParameter, ResetDirective};
    DELTA_CCTX.with(|c| {
        let mut c = c.borrow_mut();
        let c = c.get_or_insert_with(CCtx::create);
        c.set_parameter(CParameter::CompressionLevel(level)).ok()?;
        c.set_parameter(CParameter::HashLog(DELTA_HASH_LOG)).ok()?;
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

/// The base chunk a delta entry needs.
pub(crate) fn delta_base(stored: &[u8]) -> Option<ChunkId> {
    Some(ChunkId(stored.get(..32)?.try_into().ok()?))
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
        EntryKind::Delta => {
            let base = base.ok_or_else(|| corrupt("delta decoded without its base".into()))?;
            decompress_with_base(&stored[32..], base, entry.raw_length as usize)
                .map_err(|e| corrupt(e.to_string()))?
        }
    };
    if plain.len() != entry.raw_length as usize {
        return Err(corrupt("content does not match its id".into()));
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn delta_round_trip(base in prop::collection::vec(0u8..8, 1..5000), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..20)) {
            let mut page = base.clone();
            for (i, b) in edits {
                let i = i.index(page.len());
                page[i] = b;
            }
            let id = ChunkId::of(&page);
            let base_id = ChunkId::of(&base);
            let (kind, stored) = encode_with_base(&page, &base_id, &base, DELTA_LEVEL, 3);
            let entry = PackEntry { kind, id, offset: 0, length: stored.len() as u32, raw_length: page.len() as u32 };
            if kind == EntryKind::Delta {
                prop_assert_eq!(delta_base(&stored), Some(base_id));
                prop_assert!(decode_entry(&entry, &stored, None).is_err());
                let wrong: Vec<u8> = base.iter().map(|b| b ^ 1).collect();
                prop_assert!(decode_entry(&entry, &stored, Some(&wrong)).is_err());
            }
            prop_assert_eq!(decode_entry(&entry, &stored, Some(&base)).unwrap(), page.clone());
            // A delta is only ever chosen when under a quarter of the plain
            // chunk or smaller than the chunk alone.
            if kind == EntryKind::Delta {
                prop_assert!(stored.len() * 4 < page.len() || stored.len() < encode_entry(&page, 3).1.len());
                prop_assert!(page.iter().any(|b| *b != 0));
            }
        }
    }

    // Issue 9, defect 4: a zero page was stored as a 50-byte delta although
    // it compresses alone to 19 bytes, making it depend on a base it did not need.
    #[test]
    fn a_zero_page_is_never_a_delta() {
        let base: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
        let zero = vec![0u8; 4096];
        let (kind, _) = encode_with_base(&zero, &ChunkId::of(&base), &base, DELTA_LEVEL, 3);
        assert_ne!(kind, EntryKind::Delta);
    }

    /// A point's unit far from its chain's root is stored whole (a new
    /// root), where `encode_with_base` would keep a delta under a quarter
    /// of the plain bytes; near the root it stays a delta.
    #[test]
    fn a_drifted_unit_against_an_old_root_is_stored_whole() {
        let mut rng = 7u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        // Rows of text: compresses alone to a few KiB.
        let base: Vec<u8> = (0..2000)
            .flat_map(|i| format!("row {i:08} name package-{i} v1.{}.0\n", i % 7).into_bytes())
            .take(65536)
            .collect();
        let mut near = base.clone();
        near[100..140].copy_from_slice(&[b'z'; 40]);
        let mut far = base.clone();
        for _ in 0..3000 {
            let i = next() as usize % far.len();
            far[i] = b"ABCDEFG"[next() as usize % 7];
        }
        let id = ChunkId::of(&base);
        let (kind, _) = encode_refreshing(&near, &id, &base, DELTA_LEVEL, 3);
        assert_eq!(kind, EntryKind::Delta);
        let (kind, stored) = encode_refreshing(&far, &id, &base, DELTA_LEVEL, 3);
        assert_ne!(kind, EntryKind::Delta);
        assert_eq!(stored, encode_entry(&far, 3).1);
        // The rule for takes keeps that delta.
        assert_eq!(
            encode_with_base(&far, &id, &base, DELTA_LEVEL, 3).0,
            EntryKind::Delta
        );
    }
}
