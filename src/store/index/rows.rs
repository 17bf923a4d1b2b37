//! A chunk row of the index (layout 2), little-endian: the pack's number
//! (4 bytes), the entry's offset (8), length (4), raw length (4), kind (1)
//! (DESIGN.md, "The index").

use super::Location;
use crate::error::{Error, Result};
use crate::format::pack::{EntryKind, PackEntry};
use crate::id::{ChunkId, PackId};
use std::collections::HashMap;

/// Bytes of a chunk row.
pub(super) const ROW: usize = 21;

pub(super) fn encode_row(pack: u32, e: &PackEntry) -> [u8; ROW] {
    let mut v = [0u8; ROW];
    v[..4].copy_from_slice(&pack.to_le_bytes());
    v[4..12].copy_from_slice(&e.offset.to_le_bytes());
    v[12..16].copy_from_slice(&e.length.to_le_bytes());
    v[16..20].copy_from_slice(&e.raw_length.to_le_bytes());
    v[20] = e.kind as u8;
    v
}

/// A row's pack number and entry kind are checked, never guessed: an unknown
/// one is corrupt.
pub(super) fn decode_row(
    id: ChunkId,
    v: &[u8; ROW],
    packs: &HashMap<u32, PackId>,
) -> Result<Location> {
    let bad = |what: String| {
        Error::corrupt(
            format!("index row of chunk {id}"),
            format!("{what} (the index is a cache: rebuilding it from the packs repairs this)"),
        )
    };
    let kind =
        EntryKind::from_u8(v[20]).ok_or_else(|| bad(format!("unknown entry kind {}", v[20])))?;
    let number = u32::from_le_bytes(v[..4].try_into().expect("4 bytes"));
    let pack = *packs
        .get(&number)
        .ok_or_else(|| bad(format!("unknown pack number {number}")))?;
    Ok(Location {
        pack,
        entry: PackEntry {
            kind,
            id,
            offset: u64::from_le_bytes(v[4..12].try_into().expect("8 bytes")),
            length: u32::from_le_bytes(v[12..16].try_into().expect("4 bytes")),
            raw_length: u32::from_le_bytes(v[16..20].try_into().expect("4 bytes")),
        },
    })
}
