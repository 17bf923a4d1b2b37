//! recover: put back into a live database the rows a snapshot has and the
//! database has lost (a cascade delete, a bad migration), keeping every row
//! written since. In one transaction, after a `pre-recover` snapshot of the
//! database (the undo).
//!
//! It never puts a row under a parent it did not have: a row whose key now
//! holds another row (an application that reused the keys the delete
//! freed) is reported as reused, every row that hangs from it is held back
//! with the reason, and `remap` brings such rows back under new keys with
//! their children re-pointed. A row under the same key with other values
//! is a conflict: reported, and overwritten only when asked. Rows of a
//! table without a primary key are matched by content. Foreign keys are
//! checked when the transaction commits. Migration bookkeeping tables
//! (Alembic's, Django's, Rails', …) are left alone unless named.
//!
//! ```no_run
//! # let store = snap::Store::open("/var/backups/snap")?;
//! let report = snap::recover::recover(&store, &snap::recover::RecoverOptions {
//!     snapshot: "latest:/srv/app/app.db".into(),
//!     db: "/srv/app/app.db".into(),
//!     dry_run: true,
//!     ..Default::default()
//! })?;
//! for t in &report.tables {
//!     println!("{}: {} rows to recover, {} conflicts", t.table, t.recovered, t.conflicts);
//! }
//! # Ok::<(), snap::Error>(())
//! ```

mod apply;
mod plan;
mod source;
mod tables;

use crate::diff::identity::foreign_keys;
use crate::diff::table::common_tables;
use crate::error::{Error, Result};
use crate::select::Selection;
use crate::{Store, TakeOptions};
use rusqlite::Connection;
use std::path::PathBuf;
use std::time::Duration;

/// What `recover` puts back, and where.
#[derive(Clone, Debug, Default)]
pub struct RecoverOptions {
    /// The snapshot holding the rows: an id, prefix, `latest` or `latest:PATH`.
    pub snapshot: String,
    /// Which snapshots `latest` means (narrowed to those that hold the source).
    pub selection: Selection,
    /// The live database to recover into.
    pub db: PathBuf,
    /// The database inside the snapshot to take the rows from: its path as
    /// it was taken, or as `ls` shows it (`root/sub/app.db`). By default the
    /// one taken from `db`.
    pub source: Option<String>,
    /// Only these tables (all ordinary tables both have when empty, but the
    /// migration bookkeeping ones). A named table the live database lost is
    /// recreated from the snapshot's schema.
    pub tables: Vec<String>,
    /// Only the snapshot's rows that match this SQL condition.
    pub filter: Option<String>,
    /// Report what would be recovered, with the SQL; change nothing.
    pub dry_run: bool,
    /// Replace rows that exist in both with different values (never a
    /// reused key: that is another row).
    pub overwrite: bool,
    /// Bring rows whose key now holds another row back under new keys, and
    /// re-point the rows that hang from them.
    pub remap: bool,
    /// How long to wait for the store.
    pub lock_wait: crate::store::LockWait,
}

/// What `recover` found and did in one table.
#[derive(Debug, Default, serde::Serialize)]
pub struct TableRecovery {
    /// The table.
    pub table: String,
    /// Snapshot rows whose key the live table lacks (by content, for a
    /// table without a primary key).
    pub missing: u64,
    /// Rows written back under their own key (on a dry run: would be).
    pub recovered: u64,
    /// Keys in both with other values: the same row, changed since.
    pub conflicts: u64,
    /// Keys in both that hold a different row now (the key was reused).
    pub reused: u64,
    /// Rows held back because their parent is a different row now, or is
    /// neither in the live database nor recovered (`blocked_examples` says which).
    pub blocked: u64,
    /// Rows written back under a new key (`remap`).
    pub remapped: u64,
    /// Conflicting rows replaced (`overwrite`).
    pub overwritten: u64,
    /// The table was not in the live database and was recreated.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub recreated: bool,
    /// Snapshot key -> new key of each remapped row.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub new_keys: Vec<(i64, i64)>,
    /// Why rows were held back (the first few).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocked_examples: Vec<String>,
}

/// What `recover` did.
#[derive(Debug, Default, serde::Serialize)]
pub struct RecoverReport {
    /// The snapshot the rows came from.
    pub snapshot: String,
    /// The database inside it (`root/sub/app.db`).
    pub source: String,
    /// The live database.
    pub db: String,
    /// Nothing was changed.
    pub dry_run: bool,
    /// Per table.
    pub tables: Vec<TableRecovery>,
    /// Migration bookkeeping tables left as they are (name one to recover it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_alone: Vec<String>,
    /// Tables the snapshot has and the live database lost (name one to recreate it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub only_in_snapshot: Vec<String>,
    /// The statements a dry run would execute.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sql: Vec<String>,
    /// The snapshot of the database taken before it was changed (the undo).
    pub pre_recover: Option<String>,
    /// `PRAGMA foreign_key_check` after the recovery: "ok" or the problems.
    pub foreign_key_check: String,
}

impl RecoverReport {
    /// Rows written (or, on a dry run, to be written).
    pub fn written(&self) -> u64 {
        self.tables
            .iter()
            .map(|t| t.recovered + t.remapped + t.overwritten)
            .sum()
    }

    /// Whether the recovery changes (or changed) the live database.
    pub fn changes(&self) -> bool {
        self.written() > 0 || self.tables.iter().any(|t| t.recreated)
    }
}

/// Puts back into a live database the rows a snapshot has and it lost.
pub fn recover(store: &Store, opts: &RecoverOptions) -> Result<RecoverReport> {
    let db = std::path::absolute(&opts.db).map_err(Error::io("resolve", &opts.db))?;
    if !crate::source::is_sqlite(&db) {
        return Err(Error::Invalid(format!(
            "{} is not a SQLite database (recover puts rows back into an existing database)",
            db.display()
        )));
    }
    let (id, source, image) = source::image(store, opts, &db)?;
    let conn = open_live(&db, image.path())?;
    let choice = tables::choose(&conn, &opts.tables)?;
    let mut report = RecoverReport {
        snapshot: id.to_hex(),
        source,
        db: db.display().to_string(),
        dry_run: opts.dry_run,
        left_alone: choice.left_alone.clone(),
        only_in_snapshot: choice.only_in_snapshot.clone(),
        ..Default::default()
    };
    // A first look, changing nothing: a dry run's answer, and whether
    // there is anything to do (and so anything to snapshot first).
    let mut sql = Vec::new();
    report.tables =
        attempt(&conn, opts, &choice, Mode::Look(&mut sql)).map_err(Error::sqlite(&db))?;
    if opts.dry_run || !report.changes() {
        report.dry_run = true;
        if opts.dry_run {
            report.sql = sql;
        }
        return Ok(report);
    }
    let undo = crate::take(
        store,
        &TakeOptions {
            paths: vec![db.clone()],
            tags: vec![crate::select::PRE_RECOVER.into()],
            lock_wait: opts.lock_wait,
            ..Default::default()
        },
    )?;
    report.pre_recover = undo.id.map(|i| i.to_hex());
    report.tables = attempt(&conn, opts, &choice, Mode::Write).map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, m)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Error::Invalid(format!(
                "{}: the recovery would break a constraint ({}); nothing was changed (recover the parent tables too)",
                db.display(),
                m.unwrap_or_default()
            ))
        }
        other => Error::sqlite(&db)(other),
    })?;
    report.foreign_key_check =
        crate::source::sqlite::run_check(&conn, "foreign_key_check").map_err(Error::sqlite(&db))?;
    Ok(report)
}

fn open_live(db: &std::path::Path, image: &std::path::Path) -> Result<Connection> {
    let conn = Connection::open(db).map_err(Error::sqlite(db))?;
    conn.busy_timeout(Duration::from_secs(30))
        .map_err(Error::sqlite(db))?;
    let uri = format!(
        "file:{}?immutable=1",
        crate::source::sqlite::uri_path(image)
    );
    conn.execute("ATTACH ?1 AS snap", [uri])
        .map_err(Error::sqlite(db))?;
    conn.execute_batch("PRAGMA foreign_keys = ON")
        .map_err(Error::sqlite(db))?;
    Ok(conn)
}

enum Mode<'a> {
    /// Plan and print, then roll back.
    Look(&'a mut Vec<String>),
    /// Plan and write, in one transaction that holds the write lock throughout.
    Write,
}

/// Plans (and with `Mode::Write` carries out) the recovery in one
/// transaction: what it counted is what it writes.
fn attempt(
    conn: &Connection,
    opts: &RecoverOptions,
    choice: &tables::Choice,
    mode: Mode,
) -> rusqlite::Result<Vec<TableRecovery>> {
    let write = matches!(mode, Mode::Write);
    // Recreating a lost table writes, so even a look then holds the write lock.
    let begin = if write || !choice.recreate.is_empty() {
        "BEGIN IMMEDIATE"
    } else {
        "BEGIN"
    };
    conn.execute_batch(&format!("{begin}; PRAGMA defer_foreign_keys = ON;"))?;
    let result = (|| {
        tables::recreate(conn, &choice.recreate)?;
        let tables = common_tables(conn, "snap")?;
        let selected: Vec<usize> = (0..tables.len())
            .filter(|&i| {
                choice
                    .names
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(&tables[i].name))
            })
            .collect();
        let fks = foreign_keys(conn, "main", &tables)?;
        let filter = opts
            .filter
            .as_deref()
            .map_or("1".into(), |w| format!("({w})"));
        let found = plan::plan(
            conn,
            &plan::Inputs {
                tables: &tables,
                selected: &selected,
                fks: &fks,
                filter: &filter,
                remap: opts.remap,
                overwrite: opts.overwrite,
            },
        )?;
        let planned = apply::Planned {
            tables: &tables,
            selected: &selected,
            fks: &fks,
        };
        let written = match mode {
            Mode::Look(sql) => planned.sql(conn, sql)?,
            Mode::Write => planned.execute(conn)?,
        };
        plan::drop_temporaries(conn)?;
        Ok(selected
            .iter()
            .map(|&i| report(&tables[i].name, &found[i], &written[i], choice))
            .collect())
    })();
    let end = if write && result.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    match conn.execute_batch(end) {
        Err(e) if result.is_ok() => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
        _ => result,
    }
}

fn report(
    name: &str,
    found: &plan::Found,
    written: &apply::Written,
    choice: &tables::Choice,
) -> TableRecovery {
    TableRecovery {
        table: name.to_string(),
        missing: found.missing,
        recovered: written.recovered,
        conflicts: found.conflicts,
        reused: found.reused,
        blocked: found.blocked,
        remapped: written.remapped,
        overwritten: written.overwritten,
        recreated: choice.recreate.iter().any(|t| t.eq_ignore_ascii_case(name)),
        new_keys: written.new_keys.clone(),
        blocked_examples: found.blocked_examples.clone(),
    }
}
