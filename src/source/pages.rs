//! A captured database image cut into page units: runs of whole pages
//! (`UNIT_BYTES` of them, at least one page), each stored as one chunk and,
//! when the parent snapshot's unit at the same place serves, as a delta
//! against it. Pages never move, so aligned units dedup exactly as pages do,
//! with 16 times fewer chunks, index rows and page-list ids than one chunk
//! per 4 KiB page (DESIGN.md, "Page units", has the measurements).

use crate::dedup::ChunkWriter;
use crate::error::{Error, Result};
use crate::format::entry;
use crate::format::tree::Database;
#[cfg(test)]
use crate::format::tree::NodeKind;
use crate::format::units::{ListWriter, UnitCursor, UnitList, LIST_IDS};
use crate::id::ChunkId;
use crate::store::Levels;
use rayon::prelude::*;
use std::io::Read;

/// Plain bytes per unit: 16 pages of 4 KiB.
pub(crate) const UNIT_BYTES: u64 = 64 << 10;
/// Overrides `UNIT_BYTES` for the unit-size benchmark (`scripts/units_sweep.sh`).
const UNIT_BYTES_VAR: &str = "SNAP_BENCH_UNIT_BYTES";
/// Images up to this size get deltas at `SMALL_DELTA_LEVEL`: on the 41 MB
/// `npm` database level 3 stores 13 % less a day than level 1, in
/// milliseconds; on the 1 GB one it would cost 0.4 s a day.
const SMALL_IMAGE: u64 = 256 << 20;

/// Overrides `delta_level` for benchmarks.
const DELTA_LEVEL_VAR: &str = "SNAP_BENCH_DELTA_LEVEL";

/// The zstd level for deltas of a database of `bytes` (its file's size).
pub(crate) fn delta_level(bytes: u64) -> i32 {
    // Overrides the level for the delta-level experiments (BENCHMARKS.md).
    if let Some(level) = std::env::var(DELTA_LEVEL_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return level;
    }
    if bytes <= SMALL_IMAGE {
        entry::SMALL_DELTA_LEVEL
    } else {
        entry::DELTA_LEVEL
    }
}

/// The zstd level of units stored with no parent unit to be a delta
/// against (a database's first snapshot, or one after its units moved):
/// a bulk copy. On the ~1 GB `npm1g` database level 1 takes 3.08-3.13 s
/// against 3.62-3.64 s at the store's level 3, for 5.5 % more bytes (350
/// against 332 MB); later takes store changed units as deltas, at their
/// own level, whatever level their base was stored at.
pub(crate) const BULK_LEVEL: i32 = 1;

/// Units read, hashed in parallel and handed to the writer at a time.
const BATCH_UNITS: usize = 64;

/// Pages per unit for a database of `page_size`.
pub(crate) fn pages_per_unit(page_size: u32) -> u64 {
    let unit = std::env::var(UNIT_BYTES_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(UNIT_BYTES);
    (unit / page_size.max(1) as u64).max(1)
}

/// The parent's units as delta bases, when they line up with this image's
/// units (same page size and unit; a snapshot taken before units, with one
/// chunk per page, does not, and its successor is stored without deltas).
/// A listed parent's list is read as the image is stored, a chunk at a time.
pub(crate) fn bases<'a>(parent: Option<(&Database, UnitList<'a>)>, page_size: u32) -> UnitList<'a> {
    let Some((p, list)) = parent.filter(|(p, _)| p.page_size == page_size) else {
        return UnitList::Inline(&[]);
    };
    let units = p.page_count.div_ceil(pages_per_unit(page_size));
    let lines_up = match list {
        UnitList::Listed(l) => l.len() as u64 == units.div_ceil(LIST_IDS as u64),
        UnitList::Inline(l) => l.len() as u64 == units,
    };
    if lines_up {
        list
    } else {
        UnitList::Inline(&[])
    }
}

/// Reads `buf.len()` bytes, or fewer only at the end of `reader`.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Stores the image read from `reader` (whole pages of `page_size`, to its
/// end) as units, in order, and their list; returns the list's chunks and
/// the page count. The parent's list and the new one are read and written a
/// list chunk at a time, so memory does not grow with the image.
pub fn store(
    reader: &mut impl Read,
    page_size: u32,
    writer: &mut ChunkWriter,
    bases: UnitList,
    delta_level: i32,
) -> Result<(Vec<ChunkId>, u64)> {
    let level = writer.store().config().zstd_level;
    let no_bases = bases.chunks().is_empty();
    let levels = Levels {
        full: if no_bases {
            BULK_LEVEL.min(level)
        } else {
            level
        },
        delta: delta_level,
        refresh: false,
        // Not compared with other units: on `npm1g` that saved 5 % of a
        // day's bytes for 15-40 % more take time (BENCHMARKS.md, 2026-12-06).
        similar: false,
        chain: crate::format::entry::MAX_CHAIN,
    };
    let unit = (pages_per_unit(page_size) * page_size as u64) as usize;
    let mut parent = UnitCursor::new(bases);
    let mut list = ListWriter::new();
    let mut bytes = 0u64;
    let mut end = false;
    while !end {
        let mut batch = Vec::with_capacity(BATCH_UNITS);
        while batch.len() < BATCH_UNITS && !end {
            let mut data = vec![0u8; unit];
            let n = read_full(reader, &mut data).map_err(Error::io("read image", "tmp"))?;
            end = n < unit;
            if n % page_size as usize != 0 {
                return Err(Error::Invalid(format!(
                    "the image ends inside a page ({} bytes after the last whole page)",
                    n % page_size as usize
                )));
            }
            if n > 0 {
                data.truncate(n);
                bytes += n as u64;
                batch.push(data);
            }
        }
        let ids: Vec<ChunkId> = batch.par_iter().map(|d| ChunkId::of(d)).collect();
        for (data, id) in batch.into_iter().zip(ids) {
            let base = parent.step(|c| writer.read(c)).transpose()?;
            let id = writer.put_hashed(id, data, base, levels)?;
            list.push(id, |b, k| put_list(writer, b, k, bases))?;
        }
    }
    let list = list.finish(|b, k| put_list(writer, b, k, bases))?;
    Ok((list, bytes / page_size as u64))
}

/// Stores list chunk `k`, as a delta against the parent's list chunk `k`
/// where the parent is listed (an unchanged stretch costs nothing, and a
/// stretch of a few changed units about their ids).
pub(crate) fn put_list(
    writer: &mut ChunkWriter,
    bytes: Vec<u8>,
    k: usize,
    bases: UnitList,
) -> Result<ChunkId> {
    let base = match bases {
        UnitList::Listed(list) => list.get(k).copied(),
        UnitList::Inline(_) => None,
    };
    writer.put_with_base(bytes, base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(page_size: u32, page_count: u64, chunks: usize, listed: bool) -> NodeKind {
        let db = Box::new(db(page_size, page_count, chunks));
        if listed {
            NodeKind::ListedDatabase(db)
        } else {
            NodeKind::Database(db)
        }
    }

    fn db(page_size: u32, page_count: u64, chunks: usize) -> Database {
        Database {
            page_size,
            page_count,
            chunks: (0..chunks as u32)
                .map(|i| ChunkId::of(&i.to_le_bytes()))
                .collect(),
            journal_mode: "wal".into(),
            sqlite_version: String::new(),
            check: "ok".into(),
            check_kind: "quick_check".into(),
            tables: Vec::new(),
        }
    }

    #[test]
    fn bases_only_from_a_parent_whose_units_line_up() {
        assert_eq!(pages_per_unit(4096), 16);
        assert_eq!(pages_per_unit(65536), 1);
        assert_eq!(pages_per_unit(512), 128);
        // 33 pages in units of 16: 3 units, inline.
        let units = kind(4096, 33, 3, false);
        fn of(k: &NodeKind, size: u32) -> UnitList<'_> {
            bases(k.database(), size)
        }
        assert!(matches!(of(&units, 4096), UnitList::Inline(l) if l.len() == 3));
        // One chunk per page (before units): no bases.
        assert!(of(&kind(4096, 33, 33, false), 4096).chunks().is_empty());
        // Another page size: no bases.
        assert!(of(&units, 8192).chunks().is_empty());
        assert!(bases(None, 4096).chunks().is_empty());
        // Listed: 2 list chunks for 513 to 1024 units.
        let listed = kind(4096, 16 * 600, 2, true);
        assert!(matches!(of(&listed, 4096), UnitList::Listed(l) if l.len() == 2));
        assert!(of(&kind(4096, 16 * 600, 3, true), 4096).chunks().is_empty());
    }

    #[test]
    fn read_full_fills_the_buffer_until_the_end() {
        let mut bytes = std::io::Cursor::new(vec![7u8; 4096 * 3 + 100]);
        let mut buf = vec![0u8; 4096 * 4];
        assert_eq!(read_full(&mut bytes, &mut buf).unwrap(), 4096 * 3 + 100);
    }
}
