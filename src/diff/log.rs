//! The history of a table's rows across a watched database's points: for
//! each pair of consecutive points, how many rows matching a filter were
//! added, changed or removed between them ("35 candidates removed between
//! 14:02:07.1 and 14:02:08.0"). One private image file is kept and moved
//! from point to point by writing only the units that differ, so a step
//! costs the units that changed and one scan of the filtered rows.

use crate::error::{Error, Result};
use crate::format::record::Snapshot;
use crate::id::{ChunkId, SnapshotId};
use crate::store::{LockWait, Store, StoreReader};
use chrono::{DateTime, FixedOffset};
use rusqlite::types::ValueRef;
use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;

/// What `log` looks for.
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    /// The database, as it was watched (a path on this machine).
    pub db: PathBuf,
    /// The table.
    pub table: String,
    /// An SQL condition on its rows (`status = 'hired'`); all rows when None.
    pub filter: Option<String>,
    /// Only points from this moment on (the point before it is the base).
    pub since: Option<DateTime<FixedOffset>>,
    /// Only points up to this moment.
    pub until: Option<DateTime<FixedOffset>>,
    /// How long to wait for gc to release the store.
    pub lock_wait: LockWait,
}

/// Matching rows that changed between two consecutive points.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LogEntry {
    /// The earlier point and its time.
    pub from: (SnapshotId, DateTime<FixedOffset>),
    /// The later point (the first that shows the change) and its time.
    pub to: (SnapshotId, DateTime<FixedOffset>),
    /// Rows added, changed and removed.
    pub added: u64,
    /// Rows whose key stayed and whose values changed.
    pub changed: u64,
    /// Rows removed.
    pub removed: u64,
    /// Keys of the first few rows that changed, as text.
    pub keys: Vec<String>,
}

/// Keys shown per entry.
const SHOWN_KEYS: usize = 10;

/// The changes to the matching rows of `opts.table` at each point of
/// `opts.db` in the range, oldest first.
pub fn log(store: &Store, opts: &LogOptions) -> Result<Vec<LogEntry>> {
    let path = std::path::absolute(&opts.db).map_err(Error::io("resolve", &opts.db))?;
    let path = path.to_string_lossy();
    let points: Vec<(SnapshotId, Snapshot)> = store
        .snapshots()?
        .into_iter()
        .filter(|(_, s)| s.point.is_some() && s.paths.len() == 1 && s.paths[0] == path)
        .filter(|(_, s)| opts.until.is_none_or(|u| s.time <= u))
        .collect();
    let first = match opts.since {
        Some(since) => points
            .iter()
            .rposition(|(_, s)| s.time < since)
            .unwrap_or(0),
        None => 0,
    };
    let points = &points[first..];
    if points.is_empty() {
        return Err(Error::NotFound(format!(
            "no point of {path} in that range (the list of snapshots shows each watched database's windows)"
        )));
    }
    let reading = store.reading("log", opts.lock_wait.0)?;
    let mut image = Image::new()?;
    let mut out = Vec::new();
    let mut before: Option<(SnapshotId, DateTime<FixedOffset>, Rows)> = None;
    for (id, s) in points {
        crate::cancel::check()?;
        image.move_to(&reading, s)?;
        let rows = image.rows(&opts.table, opts.filter.as_deref())?;
        if let Some((from, at, old)) = before.take() {
            let e = compare(&old, &rows, (from, at), (*id, s.time));
            if e.added + e.changed + e.removed > 0 {
                out.push(e);
            }
        }
        before = Some((*id, s.time, rows));
    }
    Ok(out)
}

/// Row key (as text) -> hash of the row's values.
type Rows = BTreeMap<String, blake3::Hash>;

fn compare(
    old: &Rows,
    new: &Rows,
    from: (SnapshotId, DateTime<FixedOffset>),
    to: (SnapshotId, DateTime<FixedOffset>),
) -> LogEntry {
    let mut e = LogEntry {
        from,
        to,
        added: 0,
        changed: 0,
        removed: 0,
        keys: Vec::new(),
    };
    let note = |k: &String, e: &mut LogEntry| {
        if e.keys.len() < SHOWN_KEYS {
            e.keys.push(k.clone());
        }
    };
    for (k, h) in new {
        match old.get(k) {
            None => e.added += 1,
            Some(o) if o != h => e.changed += 1,
            Some(_) => continue,
        }
        note(k, &mut e);
    }
    for k in old.keys().filter(|k| !new.contains_key(*k)) {
        e.removed += 1;
        note(k, &mut e);
    }
    e
}

/// The private image, as of the point it was last moved to.
struct Image {
    file: tempfile::NamedTempFile,
    units: Vec<ChunkId>,
}

impl Image {
    fn new() -> Result<Image> {
        Ok(Image {
            file: tempfile::NamedTempFile::new()
                .map_err(Error::io("create temporary file", "/tmp"))?,
            units: Vec::new(),
        })
    }

    /// Writes the units of `s`'s image that differ from the current ones.
    fn move_to(&mut self, reading: &StoreReader, s: &Snapshot) -> Result<()> {
        let top = reading.tree(&s.tree)?;
        let (db, list) = top
            .nodes
            .first()
            .and_then(|n| n.kind.database())
            .ok_or_else(|| Error::corrupt("point", "its tree holds no database"))?;
        let units = reading.units(list).collect::<Result<Vec<_>>>()?;
        let f = self.file.as_file_mut();
        // Units are whole runs of pages at fixed places (`source::pages`).
        let unit = crate::source::pages::pages_per_unit(db.page_size) * db.page_size as u64;
        for (u, id) in units.iter().enumerate() {
            if self.units.get(u) != Some(id) {
                let bytes = reading.chunk(id)?;
                f.seek(SeekFrom::Start(u as u64 * unit))
                    .and_then(|_| f.write_all(&bytes))
                    .map_err(Error::io("write", "a temporary image"))?;
            }
        }
        f.set_len(db.page_count * db.page_size as u64)
            .map_err(Error::io("write", "a temporary image"))?;
        self.units = units;
        Ok(())
    }

    /// The matching rows of `table`, keyed by its primary key (or rowid).
    fn rows(&self, table: &str, filter: Option<&str>) -> Result<Rows> {
        let path = self.file.path();
        let conn = crate::source::check::open_image(path).map_err(Error::sqlite(path))?;
        let cols = super::table::columns(&conn, "main", table).map_err(Error::sqlite(path))?;
        if cols.is_empty() {
            return Ok(Rows::new());
        }
        let mut pk: Vec<_> = cols.iter().filter(|c| c.pk > 0).collect();
        pk.sort_by_key(|c| c.pk);
        let key = match pk.is_empty() {
            true => "rowid".to_string(),
            false => pk
                .iter()
                .map(|c| super::table::quote(&c.name))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let nkey = pk.len().max(1);
        let sql = format!(
            "SELECT {key}, * FROM {} WHERE {}",
            super::table::quote(table),
            filter.unwrap_or("1")
        );
        let mut stmt = conn.prepare(&sql).map_err(Error::sqlite(path))?;
        let n = stmt.column_count();
        let mut rows = stmt.query([]).map_err(Error::sqlite(path))?;
        let mut out = Rows::new();
        while let Some(r) = rows.next().map_err(Error::sqlite(path))? {
            let text = |i: usize| plain(r.get_ref(i).unwrap_or(ValueRef::Null));
            let k: Vec<String> = (0..nkey).map(text).collect();
            let mut h = blake3::Hasher::new();
            for i in nkey..n {
                h.update(text(i).as_bytes());
                h.update(&[0]);
            }
            out.insert(k.join(", "), h.finalize());
        }
        Ok(out)
    }
}

/// A value as text: numbers and text as they are, blobs in hex.
fn plain(v: ValueRef) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Blob(b) => format!(
            "x'{}'",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
    }
}
