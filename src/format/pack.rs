//! Pack byte format. A pack is written as one continuous stream: entries first,
//! then the header that describes them, then a fixed trailer, so a packer never
//! seeks and a reader finds the header from the end (restic's reasoning).
//!
//! ```text
//! [entry 0][entry 1]...[entry n-1] [header] [trailer: 28 bytes]
//! header  = version u8 (=1) | count u32le | count x entry record (49 bytes)
//! record  = kind u8 | chunk id [32] | offset u64le | length u32le | raw length u32le
//! trailer = blake3(header)[..16] | header length u32le | magic "SNAPPACK"
//! ```
//! A record of kind `FILLER` (3) covers bytes that hold no chunk: the header
//! and trailer of a pack embedded whole in a bundle (`format::bundle`); its
//! chunk id field is that pack's id, its raw length 0. Decoders skip it.
//!
//! Invariants checked by `decode_header`: entries are contiguous from offset 0
//! and end exactly where the header starts; every kind is known; no length
//! exceeds `MAX_CHUNK`. Nothing is allocated from an untrusted length beyond
//! the bytes actually present.

use crate::error::{Error, Result};
use crate::id::ChunkId;

pub(crate) const MAGIC: &[u8; 8] = b"SNAPPACK";
pub(crate) const VERSION: u8 = 1;
pub(crate) const TRAILER_LEN: usize = 28;
pub(crate) const RECORD_LEN: usize = 49;
const HEADER_FIXED: usize = 5;
/// Largest plain chunk snap ever writes or accepts (well above any chunker max).
pub(crate) const MAX_CHUNK: u32 = 16 << 20;
/// The record kind of bytes that hold no chunk (an embedded pack's header
/// and trailer, in a bundle).
pub(crate) const FILLER: u8 = 3;

/// How an entry's bytes encode its plain chunk. The chunk id is always the
/// BLAKE3 of the plain chunk, whatever the form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum EntryKind {
    /// The plain bytes (used when zstd does not make them smaller).
    Raw = 0,
    /// A zstd frame of the plain bytes.
    Zstd = 1,
    /// The base chunk's id (32 bytes), then a zstd frame of the plain bytes
    /// compressed with the base's plain bytes as a raw-content dictionary. The base may
    /// itself be a delta (a chain, at most `entry::MAX_READ_CHAIN` deep when read; take
    /// starts a new chain past `entry::MAX_CHAIN`), so decoding reads the chain down to a
    /// chunk stored in full.
    Delta = 2,
    /// A delta against several bases (`entry::MAX_BASES` at most): their
    /// count n (u8, 2 or more), their n ids, then a zstd frame of the plain
    /// bytes compressed with the bases' plain bytes, concatenated in that
    /// order, as its raw-content dictionary. The first base is the chunk's
    /// previous version (or, for a chunk with none, the most similar one);
    /// the others hold content the chunk moved from (DESIGN.md, "Delta
    /// chains"). Kind 3 is `FILLER`.
    Deltas = 4,
}

impl EntryKind {
    pub(crate) fn from_u8(v: u8) -> Option<EntryKind> {
        match v {
            0 => Some(EntryKind::Raw),
            1 => Some(EntryKind::Zstd),
            2 => Some(EntryKind::Delta),
            4 => Some(EntryKind::Deltas),
            _ => None,
        }
    }

    /// Whether the entry is decoded with other chunks (its bases).
    pub(crate) fn is_delta(self) -> bool {
        matches!(self, EntryKind::Delta | EntryKind::Deltas)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackEntry {
    pub kind: EntryKind,
    pub id: ChunkId,
    pub offset: u64,
    pub length: u32,
    pub raw_length: u32,
}

/// Header and trailer bytes for entries already written at offsets 0...
pub fn encode_header(entries: &[PackEntry]) -> Vec<u8> {
    let records = entries
        .iter()
        .map(|e| (e.kind as u8, e.id, e.offset, e.length, e.raw_length));
    encode_records(records, entries.len())
}

/// Header and trailer bytes for `count` records (kind, id, offset, length,
/// raw length), in offset order from 0.
pub(crate) fn encode_records(
    records: impl Iterator<Item = (u8, ChunkId, u64, u32, u32)>,
    count: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_FIXED + count * RECORD_LEN + TRAILER_LEN);
    out.push(VERSION);
    out.extend_from_slice(&(count as u32).to_le_bytes());
    for (kind, id, offset, length, raw_length) in records {
        out.push(kind);
        out.extend_from_slice(&id.0);
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(&raw_length.to_le_bytes());
    }
    let header_len = out.len() as u32;
    let sum = blake3::hash(&out);
    out.extend_from_slice(&sum.as_bytes()[..16]);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(MAGIC);
    out
}

/// Reads the trailer (the last `TRAILER_LEN` bytes of a pack of `file_len`
/// bytes) and returns the header length and checksum.
pub(crate) fn decode_trailer(trailer: &[u8], file_len: u64) -> Result<(u32, [u8; 16])> {
    if trailer.len() != TRAILER_LEN || file_len < TRAILER_LEN as u64 {
        return Err(Error::corrupt("pack", "shorter than its trailer"));
    }
    if &trailer[20..28] != MAGIC {
        return Err(Error::corrupt("pack", "bad magic: not a snap pack"));
    }
    let mut sum = [0u8; 16];
    sum.copy_from_slice(&trailer[..16]);
    let header_len = u32::from_le_bytes(trailer[16..20].try_into().unwrap());
    if header_len as u64 > file_len - TRAILER_LEN as u64 || (header_len as usize) < HEADER_FIXED {
        return Err(Error::corrupt(
            "pack",
            format!("header length {header_len} does not fit a {file_len}-byte pack"),
        ));
    }
    Ok((header_len, sum))
}

/// Decodes and validates a header; `data_len` is the length of the entry area
/// (the pack's length minus header and trailer).
pub(crate) fn decode_header(
    header: &[u8],
    sum: &[u8; 16],
    data_len: u64,
) -> Result<Vec<PackEntry>> {
    if &blake3::hash(header).as_bytes()[..16] != sum {
        return Err(Error::corrupt("pack", "header checksum mismatch"));
    }
    if header.len() < HEADER_FIXED || header[0] != VERSION {
        return Err(Error::corrupt("pack", "unknown header version"));
    }
    let count = u32::from_le_bytes(header[1..5].try_into().unwrap()) as usize;
    let records = &header[HEADER_FIXED..];
    if records.len() != count.saturating_mul(RECORD_LEN) {
        return Err(Error::corrupt(
            "pack",
            "entry count does not match header length",
        ));
    }
    let mut entries = Vec::with_capacity(count);
    let mut next = 0u64;
    for r in records.chunks_exact(RECORD_LEN) {
        let id = ChunkId(r[1..33].try_into().unwrap());
        let offset = u64::from_le_bytes(r[33..41].try_into().unwrap());
        let length = u32::from_le_bytes(r[41..45].try_into().unwrap());
        let raw_length = u32::from_le_bytes(r[45..49].try_into().unwrap());
        if offset != next || length > MAX_CHUNK || raw_length > MAX_CHUNK {
            return Err(Error::corrupt(
                "pack",
                format!("bad entry for chunk {}", id.short()),
            ));
        }
        if r[0] == FILLER && raw_length == 0 {
            next = offset + length as u64;
            continue;
        }
        let kind = EntryKind::from_u8(r[0])
            .ok_or_else(|| Error::corrupt("pack", format!("unknown entry kind {}", r[0])))?;
        if kind == EntryKind::Raw && length != raw_length {
            return Err(Error::corrupt("pack", "raw entry with two lengths"));
        }
        if kind == EntryKind::Delta && (length as usize) < 32
            || kind == EntryKind::Deltas && (length as usize) < 1 + 64
        {
            return Err(Error::corrupt("pack", "delta entry without a base"));
        }
        next = offset + length as u64;
        entries.push(PackEntry {
            kind,
            id,
            offset,
            length,
            raw_length,
        });
    }
    if next != data_len {
        return Err(Error::corrupt("pack", "entries do not cover the data area"));
    }
    Ok(entries)
}

/// Decodes a whole pack held in memory (index rebuild, fuzzing).
pub(crate) fn decode_pack(bytes: &[u8]) -> Result<Vec<PackEntry>> {
    let len = bytes.len() as u64;
    if bytes.len() < TRAILER_LEN {
        return Err(Error::corrupt("pack", "shorter than its trailer"));
    }
    let (header_len, sum) = decode_trailer(&bytes[bytes.len() - TRAILER_LEN..], len)?;
    let header_start = bytes.len() - TRAILER_LEN - header_len as usize;
    decode_header(
        &bytes[header_start..bytes.len() - TRAILER_LEN],
        &sum,
        header_start as u64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::entry::{decode_entry, encode_entry};
    use proptest::prelude::*;

    fn build(chunks: &[Vec<u8>]) -> (Vec<u8>, Vec<PackEntry>) {
        let mut data = Vec::new();
        let mut entries = Vec::new();
        for c in chunks {
            let (kind, stored) = encode_entry(c, 3);
            entries.push(PackEntry {
                kind,
                id: ChunkId::of(c),
                offset: data.len() as u64,
                length: stored.len() as u32,
                raw_length: c.len() as u32,
            });
            data.extend_from_slice(&stored);
        }
        data.extend_from_slice(&encode_header(&entries));
        (data, entries)
    }

    proptest! {
        #[test]
        fn round_trip(chunks in prop::collection::vec(prop::collection::vec(0u8..4, 0..3000), 0..20)) {
            let (pack, entries) = build(&chunks);
            let decoded = decode_pack(&pack).unwrap();
            prop_assert_eq!(&decoded, &entries);
            for (e, c) in decoded.iter().zip(&chunks) {
                let stored = &pack[e.offset as usize..(e.offset + e.length as u64) as usize];
                prop_assert_eq!(&decode_entry(e, stored, None).unwrap(), c);
            }
        }

        #[test]
        fn any_single_flip_is_detected(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..500), 1..5), pos in any::<prop::sample::Index>()) {
            let (mut pack, _) = build(&chunks);
            let i = pos.index(pack.len());
            pack[i] ^= 0x40;
            let ok = decode_pack(&pack).and_then(|entries| {
                entries.iter().zip(&chunks).try_for_each(|(e, _)| {
                    let stored = &pack[e.offset as usize..(e.offset + e.length as u64) as usize];
                    decode_entry(e, stored, None).map(|_| ())
                })
            });
            prop_assert!(ok.is_err());
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_pack(b"").is_err());
        assert!(decode_pack(&[0u8; 100]).is_err());
        let mut fake = vec![0u8; 16];
        fake.extend_from_slice(&u32::MAX.to_le_bytes());
        fake.extend_from_slice(MAGIC);
        assert!(decode_pack(&fake).is_err());
    }
}
