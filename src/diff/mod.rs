//! diff: what changed between two snapshots, or between a snapshot and the
//! live paths it was taken from: files added, removed and changed (with
//! sizes), and for every database in both, rows added, removed and changed
//! per table, schema changes, and optionally the SQL that turns A's rows
//! into B's. Snapshot databases are materialized one image at a time in a
//! private temporary file; nothing else of a snapshot is written to disk.
//!
//! ```no_run
//! # let store = snap::Store::open("/var/backups/snap")?;
//! let report = snap::diff::diff(&store, &snap::diff::DiffOptions {
//!     a: "latest:/srv/app/app.db".into(),
//!     b: None, // the live paths
//!     ..Default::default()
//! })?;
//! for t in report.databases.iter().flat_map(|d| &d.tables) {
//!     println!("{}: {} rows removed since the snapshot", t.table, t.removed);
//! }
//! # Ok::<(), snap::Error>(())
//! ```

pub(crate) mod identity;
pub mod log;
pub mod rows;
mod side;
pub(crate) mod table;

pub use rows::{ColumnChange, DbDiff, TableDiff};
pub(crate) use side::image;

use crate::error::Result;
use crate::select::Selection;
use crate::Store;
use side::{Entry, Kind};
use std::collections::{BTreeMap, HashSet};

/// What `diff` compares.
#[derive(Clone, Debug, Default)]
pub struct DiffOptions {
    /// The older side: an id, prefix, `latest` or `latest:PATH`.
    pub a: String,
    /// The newer side; `None` compares with the live paths A was taken from.
    pub b: Option<String>,
    /// Which snapshots `latest` means.
    pub selection: Selection,
    /// Only this path inside the snapshots (`root/sub`).
    pub path: Option<String>,
    /// Compare files and databases only by content, not row by row.
    pub no_rows: bool,
    /// Also produce the SQL that turns A's rows into B's.
    pub sql: bool,
    /// How long to wait for gc to release the store.
    pub lock_wait: crate::store::LockWait,
}

/// One path that differs.
#[derive(Debug, Default, serde::Serialize)]
pub struct FileChange {
    /// The path inside the snapshots (`root/sub/file`).
    pub path: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    /// `file`, `dir`, `link` or `db` (B's kind when it changed kind).
    pub kind: &'static str,
    /// Its size in A (none when added).
    pub size_a: Option<u64>,
    /// Its size in B (none when removed).
    pub size_b: Option<u64>,
}

/// What `diff` found.
#[derive(Debug, Default, serde::Serialize)]
pub struct DiffReport {
    /// A's snapshot id.
    pub a: String,
    /// B's snapshot id, or `live`.
    pub b: String,
    /// Paths added, removed or changed, in path order.
    pub changes: Vec<FileChange>,
    /// Databases in both whose rows or schema differ.
    pub databases: Vec<DbDiff>,
}

/// Compares two snapshots, or a snapshot with the live paths it was taken from.
pub fn diff(store: &Store, opts: &DiffOptions) -> Result<DiffReport> {
    let reader = store.reading("diff", opts.lock_wait.0)?;
    let a_id = store.resolve_in(&opts.a, &opts.selection)?;
    let a_snap = store.load_snapshot(&a_id)?;
    let a = side::from_snapshot(&reader, &a_snap, opts.path.as_deref())?;
    let (b_name, b) = match &opts.b {
        Some(spec) => {
            let id = store.resolve_in(spec, &opts.selection)?;
            let snap = store.load_snapshot(&id)?;
            (
                id.to_hex(),
                side::from_snapshot(&reader, &snap, opts.path.as_deref())?,
            )
        }
        None => (
            "live".into(),
            side::from_live(&a_snap, opts.path.as_deref(), store.config().chunker)?,
        ),
    };
    let mut report = DiffReport {
        a: a_id.to_hex(),
        b: b_name,
        ..Default::default()
    };
    // Databases in both whose pages differ (a live one always might) are
    // compared row by row; a live one with no difference counts as unchanged.
    let mut same = HashSet::new();
    if !opts.no_rows {
        for (path, ea) in &a {
            let Some(eb) = b.get(path) else { continue };
            if ea.kind != Kind::Db || eb.kind != Kind::Db || ea.key == eb.key {
                continue;
            }
            let d = side::diff_databases(&reader, path, ea, eb, opts.sql)?;
            if d.schema.is_empty() && d.tables.is_empty() {
                same.insert(path.clone());
            } else {
                report.databases.push(d);
            }
        }
    }
    compare(&a, &b, &same, &mut report);
    Ok(report)
}

/// Files added, removed and changed, in path order.
fn compare(
    a: &BTreeMap<String, Entry>,
    b: &BTreeMap<String, Entry>,
    same: &HashSet<String>,
    report: &mut DiffReport,
) {
    for (path, ea) in a {
        let change = match b.get(path) {
            None => "removed",
            Some(eb) if eb.kind != ea.kind => "changed",
            Some(eb) if eb.key != ea.key && ea.kind != Kind::Dir && !same.contains(path) => {
                "changed"
            }
            Some(_) => continue,
        };
        report.changes.push(FileChange {
            path: path.clone(),
            change,
            kind: b.get(path).unwrap_or(ea).kind.name(),
            size_a: Some(ea.size),
            size_b: b.get(path).map(|e| e.size),
        });
    }
    for (path, eb) in b {
        if !a.contains_key(path) {
            report.changes.push(FileChange {
                path: path.clone(),
                change: "added",
                kind: eb.kind.name(),
                size_a: None,
                size_b: Some(eb.size),
            });
        }
    }
    report.changes.sort_by(|x, y| x.path.cmp(&y.path));
}
