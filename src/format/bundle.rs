//! A bundle: several small packs sent to a remote as one object, so the
//! objects a mirror creates per run stay bounded however many points it
//! carries.
//!
//! ```text
//! bundle = [pack 0 bytes][pack 1 bytes]...[pack n-1 bytes] [header] [trailer]
//! ```
//!
//! Each pack is kept whole and in order, so a pack is a byte range of its
//! bundle (a store reads a pack it lost from that range and checks it
//! against the pack's id). The bundle's header lists every entry of every
//! pack at its offset in the bundle, and one `FILLER` record per pack over
//! that pack's own header and trailer (its chunk id field: the pack's id).
//! So a bundle decodes as a pack like any other, named by the BLAKE3 of its
//! bytes, and every reader of packs reads it unchanged.

use super::pack::{self, FILLER, MAX_CHUNK, TRAILER_LEN};
use crate::error::{Error, Result};
use crate::id::{ChunkId, PackId};

/// Where one pack lies in its bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: PackId,
    pub base: u64,
    pub len: u64,
}

/// Packs whose own header and trailer exceed this are not bundled (a
/// filler is bounded like any entry).
pub fn bundles(header_len: u64) -> bool {
    header_len + (TRAILER_LEN as u64) <= MAX_CHUNK as u64
}

/// The bundle of `packs` (each decoded and checked first) and where each lies.
pub fn bundle(packs: &[(PackId, Vec<u8>)]) -> Result<(Vec<u8>, Vec<Member>)> {
    let total: usize = packs.iter().map(|(_, b)| b.len()).sum();
    let mut out = Vec::with_capacity(total + 4096);
    let mut records = Vec::new();
    let mut members = Vec::with_capacity(packs.len());
    for (id, bytes) in packs {
        let entries = pack::decode_pack(bytes)?;
        let data_end = entries.last().map_or(0, |e| e.offset + e.length as u64);
        let tail = bytes.len() as u64 - data_end;
        if !bundles(tail) || entries.iter().any(|e| e.offset > data_end) {
            return Err(Error::Invalid(format!("pack {id} is too large to bundle")));
        }
        let base = out.len() as u64;
        for e in &entries {
            records.push((e.kind as u8, e.id, base + e.offset, e.length, e.raw_length));
        }
        records.push((FILLER, ChunkId(id.0), base + data_end, tail as u32, 0));
        out.extend_from_slice(bytes);
        members.push(Member {
            id: *id,
            base,
            len: bytes.len() as u64,
        });
    }
    let count = records.len();
    out.extend(pack::encode_records(records.into_iter(), count));
    Ok((out, members))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::entry::encode_entry;
    use crate::format::pack::PackEntry;

    fn pack_of(chunks: &[&[u8]]) -> (PackId, Vec<u8>, Vec<PackEntry>) {
        let (mut data, mut entries) = (Vec::new(), Vec::new());
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
        data.extend(pack::encode_header(&entries));
        (PackId::of(&data), data, entries)
    }

    #[test]
    fn a_bundle_is_a_pack_of_every_entry_and_each_pack_is_a_range_of_it() {
        let a = pack_of(&[b"alpha".as_slice(), &[7u8; 5000]]);
        let b = pack_of(&[b"beta".as_slice()]);
        let empty = pack_of(&[]);
        let packs = [&a, &b, &empty].map(|(id, bytes, _)| (*id, bytes.clone()));
        let (bytes, members) = bundle(&packs).unwrap();
        let entries = pack::decode_pack(&bytes).unwrap();
        let ids: Vec<ChunkId> = entries.iter().map(|e| e.id).collect();
        let want: Vec<ChunkId> = [&a, &b]
            .iter()
            .flat_map(|p| p.2.iter().map(|e| e.id))
            .collect();
        assert_eq!(ids, want, "fillers are not entries");
        for (m, (id, pack, own)) in members.iter().zip([&a, &b, &empty]) {
            assert_eq!(m.id, *id);
            let range = &bytes[m.base as usize..(m.base + m.len) as usize];
            assert_eq!(range, &pack[..]);
            for e in own {
                let at = entries.iter().find(|x| x.id == e.id).unwrap();
                assert_eq!(at.offset, m.base + e.offset);
            }
        }
        // A filler covers bytes without a chunk; with a raw length it is
        // an unknown kind, rejected.
        for (raw, ok) in [(0u32, true), (1, false)] {
            let mut p = vec![0u8; 3];
            let recs = [(FILLER, ChunkId([0; 32]), 0u64, 3u32, raw)];
            p.extend(pack::encode_records(recs.into_iter(), 1));
            let got = pack::decode_pack(&p);
            assert_eq!(got.as_ref().map(Vec::len).ok(), ok.then_some(0), "{got:?}");
        }
    }
}
