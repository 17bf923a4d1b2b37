//! Chunk boundaries: FastCDC (v2020) for ordinary files and encoded trees,
//! whole pages for SQLite images (pages never move, so content-defined cuts
//! gain nothing there). Pure: no I/O beyond the reader it is handed.

use crate::store::ChunkerParams;
use fastcdc::v2020::{FastCDC, StreamCDC};
use std::io::Read;

/// Streams `reader` as content-defined chunks; memory is bounded by `max`.
pub fn file_chunks<R: Read>(
    reader: R,
    p: ChunkerParams,
) -> impl Iterator<Item = std::io::Result<Vec<u8>>> {
    StreamCDC::new(reader, p.min as usize, p.avg as usize, p.max as usize).map(|r| {
        r.map(|c| c.data).map_err(|e| match e {
            fastcdc::v2020::Error::IoError(io) => io,
            other => std::io::Error::other(other.to_string()),
        })
    })
}

/// Cut points of an in-memory buffer (encoded trees), as ranges.
pub(crate) fn buffer_chunks(data: &[u8], p: ChunkerParams) -> Vec<std::ops::Range<usize>> {
    if data.is_empty() {
        return Vec::new();
    }
    FastCDC::new(data, p.min as usize, p.avg as usize, p.max as usize)
        .map(|c| c.offset..c.offset + c.length)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: ChunkerParams = ChunkerParams {
        min: 256,
        avg: 1024,
        max: 4096,
    };

    proptest! {
        #[test]
        fn chunks_concatenate_to_input(data in prop::collection::vec(any::<u8>(), 0..20_000)) {
            let joined: Vec<u8> = file_chunks(&data[..], P).flat_map(|c| c.unwrap()).collect();
            prop_assert_eq!(&joined, &data);
            let ranges = buffer_chunks(&data, P);
            let joined: Vec<u8> = ranges.iter().flat_map(|r| data[r.clone()].to_vec()).collect();
            prop_assert_eq!(joined, data);
            for r in ranges {
                prop_assert!(r.len() <= P.max as usize);
            }
        }
    }
}
