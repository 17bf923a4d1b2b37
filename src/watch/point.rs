//! One point: inside one short read transaction, the units that hold a
//! changed page are read through `sqlite_dbpage` and stored (as deltas
//! against the previous point's units); every other unit is the previous
//! point's. Then the unit list, a one-node tree and the record, in take's
//! durability order: every chunk durable and indexed before the record.

use super::changes::Change;
use crate::dedup::ChunkWriter;
use crate::error::{Error, Result};
use crate::format::record::{DatabaseSummary, Point, Snapshot, TakeStats, RECORD_VERSION};
use crate::format::tree::{Database, NodeKind, Tree};
use crate::format::units::{ListWriter, UnitList};
use crate::id::{ChunkId, SnapshotId};
use crate::source::{self, pages, sqlite::lock_byte_page};
use crate::store::Levels;
use crate::store::Repository;
use rayon::prelude::*;
use rusqlite::Connection;
use std::collections::BTreeSet;
use std::path::Path;

/// The newest point of a database, as the watcher keeps it between points.
#[derive(Clone, Debug)]
pub(crate) struct Last {
    pub id: SnapshotId,
    pub record: Snapshot,
    pub db: Database,
    /// Its unit ids, in order (a 10 GiB database's are 5 MB).
    pub units: Vec<ChunkId>,
    /// The file's (device, inode) when it was recorded.
    pub identity: (u64, u64),
}

/// What one point reads and where it stands.
pub(crate) struct Spec<'a> {
    pub path: &'a Path,
    pub conn: &'a Connection,
    pub change: &'a Change,
    pub last: Option<&'a Last>,
    /// The read transaction's (page size, page count).
    pub shape: (u32, u64),
    pub point: Point,
    pub time: chrono::DateTime<chrono::FixedOffset>,
    pub tags: &'a [String],
    pub journal_mode: String,
    /// The file's (device, inode).
    pub identity: (u64, u64),
}

/// Stores the units the change makes new; returns every unit id in order
/// and the bytes read.
fn store_units(
    w: &mut ChunkWriter,
    spec: &Spec,
    parent: Option<&Last>,
) -> Result<(Vec<ChunkId>, u64)> {
    let (page_size, page_count) = spec.shape;
    let ppu = pages::pages_per_unit(page_size);
    let n_units = page_count.div_ceil(ppu) as usize;
    let reread = units_to_read(spec, page_size, page_count);
    let old = |u: usize| parent.and_then(|p| p.units.get(u)).copied();
    let todo: Vec<usize> = (0..n_units)
        .filter(|u| reread.contains(u) || old(*u).is_none())
        .collect();
    let config = w.store().config();
    let levels = |base: bool| Levels {
        full: match base {
            true => config.zstd_level,
            false => pages::BULK_LEVEL.min(config.zstd_level),
        },
        delta: pages::delta_level(page_count * page_size as u64),
        refresh: true,
        similar: true,
        chain: crate::format::entry::POINT_CHAIN,
    };
    let (mut units, mut read) = (Vec::with_capacity(n_units), 0u64);
    // Only a point that knows what changed announces its units: a full
    // read would resolve every unit's base, changed or not.
    if matches!(spec.change, Change::Pages(_)) {
        let olds: Vec<ChunkId> = todo.iter().filter_map(|u| old(*u)).collect();
        let unit = (ppu * page_size as u64) as usize;
        w.expect_bases(&olds, unit, crate::format::entry::POINT_CHAIN);
    }
    // Every unit before `u` that is not read again is the parent's.
    let keep_to = |units: &mut Vec<ChunkId>, u: usize| {
        while units.len() < u {
            units.push(old(units.len()).expect("a unit not read again has a parent"));
        }
    };
    for batch in todo.chunks(BATCH) {
        crate::cancel::check()?;
        let data = batch
            .iter()
            .map(|u| read_unit(spec.conn, spec.path, *u as u64, ppu, spec.shape))
            .collect::<Result<Vec<_>>>()?;
        let ids: Vec<ChunkId> = data.par_iter().map(|d| ChunkId::of(d)).collect();
        for ((u, bytes), id) in batch.iter().zip(data).zip(ids) {
            keep_to(&mut units, *u);
            read += bytes.len() as u64;
            let base = old(*u);
            units.push(w.put_hashed(id, bytes, base, levels(base.is_some()))?);
        }
    }
    keep_to(&mut units, n_units);
    Ok((units, read))
}

/// Units read and stored at a time (hashed in parallel).
const BATCH: usize = 64;

/// Stores the point `spec` describes; the caller holds the store's writer
/// lock and `spec.conn` is inside the read transaction the shape came from.
/// None when the image read is the previous point's (a change that was not
/// known, and was none): no record.
pub fn write(repo: &Repository, spec: Spec) -> Result<Option<(Last, u64)>> {
    let start = std::time::Instant::now();
    let (page_size, page_count) = spec.shape;
    let mut w = ChunkWriter::new(repo)?;
    let parent = spec.last.filter(|l| l.db.page_size == page_size);
    let (units, read) = store_units(&mut w, &spec, parent)?;
    if parent.is_some_and(|p| p.units == units && p.db.page_count == page_count) {
        return Ok(None);
    }
    let db = database(&mut w, &spec, &units, parent)?;
    let meta = std::fs::metadata(spec.path).map_err(Error::io("stat", spec.path))?;
    let name = spec
        .path
        .file_name()
        .map_or(b"db".to_vec(), |n| n.as_encoded_bytes().to_vec());
    let mut node = source::node(
        name.clone(),
        &meta,
        NodeKind::ListedDatabase(Box::new(db.clone())),
    );
    node.size = page_count * page_size as u64;
    let tree = w.put_buffer(&crate::format::tree::encode_tree(&Tree {
        nodes: vec![node],
    }))?;
    let written = w.finish()?;
    let mut point = spec.point;
    point.pages_read = read / page_size as u64;
    let record = Snapshot {
        version: RECORD_VERSION,
        time: spec.time,
        host: gethostname::gethostname().to_string_lossy().into_owned(),
        paths: vec![spec.path.to_string_lossy().into_owned()],
        tags: spec.tags.to_vec(),
        tree,
        parent: spec.last.map(|l| l.id),
        stats: TakeStats {
            databases: 1,
            size: page_count * page_size as u64,
            read,
            added: written.added,
            added_raw: written.added_raw,
            chunks_added: written.chunks_added,
            duration_ms: start.elapsed().as_millis() as u64,
            ..Default::default()
        },
        skipped: Vec::new(),
        databases: vec![summary(&name, &db)],
        excludes: Vec::new(),
        point: Some(point),
    };
    // The record is written last: only now is every chunk it names durable.
    let id = repo.write_snapshot(&record)?;
    let added = written.added;
    let last = Last {
        id,
        record,
        db,
        units,
        identity: spec.identity,
    };
    Ok(Some((last, added)))
}

/// The image `spec` describes, its units stored (deltas against `last`'s),
/// and the bytes read: what a take that follows a point stores.
pub fn image(w: &mut ChunkWriter, spec: &Spec, last: &Last) -> Result<(Database, u64)> {
    let (units, read) = store_units(w, spec, Some(last))?;
    Ok((database(w, spec, &units, Some(last))?, read))
}

/// The unit list of `units` stored, and the (unchecked) image it makes.
fn database(
    w: &mut ChunkWriter,
    spec: &Spec,
    units: &[ChunkId],
    parent: Option<&Last>,
) -> Result<Database> {
    let (page_size, page_count) = spec.shape;
    Ok(Database {
        page_size,
        page_count,
        chunks: store_list(w, units, parent)?,
        journal_mode: spec.journal_mode.clone(),
        sqlite_version: rusqlite::version().to_string(),
        check: "not checked".into(),
        check_kind: crate::format::record::UNCHECKED.into(),
        tables: Vec::new(),
    })
}

fn summary(name: &[u8], db: &Database) -> DatabaseSummary {
    source::sqlite::summary(String::from_utf8_lossy(name).into_owned(), db)
}

/// The units that must be read again: those holding a changed page, the
/// ones past the previous point's end, and the last one when the page count
/// changed; every unit when the change is unknown or the shape changed.
fn units_to_read(spec: &Spec, page_size: u32, page_count: u64) -> BTreeSet<usize> {
    let ppu = pages::pages_per_unit(page_size);
    let n_units = page_count.div_ceil(ppu) as usize;
    let all = || (0..n_units).collect();
    let Some(last) = spec.last.filter(|l| l.db.page_size == page_size) else {
        return all();
    };
    let mut out: BTreeSet<usize> = match spec.change {
        Change::Unknown(_) => return all(),
        Change::Nothing => BTreeSet::new(),
        Change::Pages(p) => p
            .iter()
            .filter(|p| **p as u64 <= page_count && **p > 0)
            .map(|p| ((*p as u64 - 1) / ppu) as usize)
            .collect(),
    };
    if page_count != last.db.page_count {
        out.extend(n_units.saturating_sub(1)..n_units);
        out.extend(last.units.len().saturating_sub(1)..n_units);
    }
    out.retain(|u| *u < n_units);
    out
}

/// Unit `u`'s pages, read in the current read transaction.
fn read_unit(
    conn: &Connection,
    path: &Path,
    u: u64,
    ppu: u64,
    (page_size, page_count): (u32, u64),
) -> Result<Vec<u8>> {
    let mut stmt = conn
        .prepare_cached("SELECT data FROM sqlite_dbpage WHERE pgno = ?1")
        .map_err(Error::sqlite(path))?;
    let first = u * ppu + 1;
    let end = ((u + 1) * ppu).min(page_count);
    let mut out = Vec::with_capacity(((end + 1 - first) * page_size as u64) as usize);
    for pgno in first..=end {
        let page: Option<Vec<u8>> = match pgno == lock_byte_page(page_size) {
            true => None,
            false => stmt
                .query_row([pgno as i64], |r| r.get(0))
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })
                .map_err(Error::sqlite(path))?,
        };
        let mut page = page.unwrap_or_default();
        page.resize(page_size as usize, 0);
        out.extend_from_slice(&page);
    }
    Ok(out)
}

/// The unit list's chunks; a list chunk is a delta against the previous
/// point's chunk at its place (unchanged, it is the same chunk).
fn store_list(
    w: &mut ChunkWriter,
    units: &[ChunkId],
    parent: Option<&Last>,
) -> Result<Vec<ChunkId>> {
    let bases = parent.map_or(UnitList::Inline(&[]), |p| UnitList::Listed(&p.db.chunks));
    let mut list = ListWriter::new();
    for id in units {
        list.push(*id, |b, k| pages::put_list(w, b, k, bases))?;
    }
    list.finish(|b, k| pages::put_list(w, b, k, bases))
}
