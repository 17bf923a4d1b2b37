//! recover: put back into a live database the rows a snapshot has and the
//! database has lost (a cascade delete, a bad migration), keeping every row
//! written since. In one transaction, after a `pre-recover` snapshot of the
//! database; a row under the same key with different values is a conflict:
//! reported, and overwritten only when asked. Foreign keys are checked when
//! the transaction commits, so rows come back in any order and a recovery
//! that would leave an orphan is refused whole.
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
//!     println!("{}: {} rows to recover, {} conflicts", t.table, t.missing, t.conflicts);
//! }
//! # Ok::<(), snap::Error>(())
//! ```

use crate::diff::rows::{common_tables, quote, Table};
use crate::error::{Error, Result};
use crate::select::Selection;
use crate::store::StoreReader;
use crate::{Store, TakeOptions};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `recover` puts back, and where.
#[derive(Clone, Debug, Default)]
pub struct RecoverOptions {
    /// The snapshot holding the rows: an id, prefix, `latest` or `latest:PATH`.
    pub snapshot: String,
    /// Which snapshots `latest` means (narrowed to those that hold `db`).
    pub selection: Selection,
    /// The live database to recover into (as it was snapshotted).
    pub db: PathBuf,
    /// Only these tables (all ordinary tables when empty).
    pub tables: Vec<String>,
    /// Only the snapshot's rows that match this SQL condition.
    pub filter: Option<String>,
    /// Report what would be recovered, with the SQL; change nothing.
    pub dry_run: bool,
    /// Replace rows that exist in both with different values.
    pub overwrite: bool,
    /// How long to wait for the store.
    pub lock_wait: crate::store::LockWait,
}

/// What `recover` found and did in one table.
#[derive(Debug, Default, serde::Serialize)]
pub struct TableRecovery {
    /// The table.
    pub table: String,
    /// Rows in the snapshot whose key the live table lacks.
    pub missing: u64,
    /// Rows put back (0 on a dry run).
    pub recovered: u64,
    /// Keys in both with different values.
    pub conflicts: u64,
    /// Rows overwritten (with `overwrite`).
    pub overwritten: u64,
}

/// What `recover` did.
#[derive(Debug, Default, serde::Serialize)]
pub struct RecoverReport {
    /// The snapshot the rows came from.
    pub snapshot: String,
    /// The live database.
    pub db: String,
    /// Nothing was changed.
    pub dry_run: bool,
    /// Per table.
    pub tables: Vec<TableRecovery>,
    /// The statements a dry run would execute.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sql: Vec<String>,
    /// The snapshot of the database taken before it was changed (the undo).
    pub pre_recover: Option<String>,
    /// `PRAGMA foreign_key_check` after the recovery: "ok" or the problems.
    pub foreign_key_check: String,
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
    let id = store.resolve_in(&opts.snapshot, &opts.selection.with_path(db.clone()))?;
    let image = {
        let lock = store.lock_shared("recover", opts.lock_wait.0)?;
        let index = store.open_index(&lock)?;
        let reader = StoreReader::new(store, &index)?;
        let node = database_node(&reader, &store.load_snapshot(&id)?, &db)?;
        let (_, list) = node.kind.database().expect("a database node");
        crate::diff::image(&reader, list)?
    };
    let mut report = RecoverReport {
        snapshot: id.to_hex(),
        db: db.display().to_string(),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let conn = open_live(&db, image.path())?;
    let tables = selected(&conn, &opts.tables).map_err(Error::sqlite(&db))?;
    for t in &tables {
        report
            .tables
            .push(count(&conn, t, opts).map_err(Error::sqlite(&db))?);
    }
    if opts.dry_run {
        for t in &tables {
            plan_sql(&conn, t, opts, &mut report.sql).map_err(Error::sqlite(&db))?;
        }
        return Ok(report);
    }
    let undo = crate::take(
        store,
        &TakeOptions {
            paths: vec![db.clone()],
            tags: vec!["pre-recover".into()],
            lock_wait: opts.lock_wait,
            ..Default::default()
        },
    )?;
    report.pre_recover = undo.id.map(|i| i.to_hex());
    apply(&conn, &tables, opts, &mut report).map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, m)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Error::Invalid(format!(
                "{}: the recovery would break a constraint ({}); nothing was changed (recover the parent tables too, or pass --overwrite for conflicts)",
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

/// The node of the database image at live path `db` inside `snap`.
fn database_node(
    reader: &StoreReader,
    snap: &crate::Snapshot,
    db: &Path,
) -> Result<crate::format::tree::Node> {
    let root = snap
        .paths
        .iter()
        .map(PathBuf::from)
        .find(|p| db.starts_with(p))
        .ok_or_else(|| Error::NotFound(format!("the snapshot does not hold {}", db.display())))?;
    let mut rel = PathBuf::from(root.file_name().unwrap_or_default());
    rel.push(db.strip_prefix(&root).expect("checked prefix"));
    let top = reader.tree(&snap.tree)?;
    let node = crate::restore::lookup(reader, &top, &rel.to_string_lossy())?;
    match node.kind.database() {
        Some(_) => Ok(node),
        None => Err(Error::Invalid(format!(
            "{} is not a database in the snapshot",
            db.display()
        ))),
    }
}

fn open_live(db: &Path, image: &Path) -> Result<Connection> {
    let conn = Connection::open(db).map_err(Error::sqlite(db))?;
    conn.busy_timeout(Duration::from_secs(30))
        .map_err(Error::sqlite(db))?;
    let uri = format!(
        "file:{}?immutable=1",
        crate::source::sqlite::uri_path(image)
    );
    conn.execute("ATTACH ?1 AS snap", [uri])
        .map_err(Error::sqlite(db))?;
    Ok(conn)
}

/// The tables to recover: those both have, or the ones asked for.
fn selected(conn: &Connection, only: &[String]) -> rusqlite::Result<Vec<Table>> {
    Ok(common_tables(conn, "snap")?
        .into_iter()
        .filter(|t| only.is_empty() || only.contains(&t.name))
        .collect())
}

fn filter(opts: &RecoverOptions) -> String {
    opts.filter
        .as_deref()
        .map(|w| format!(" AND ({w})"))
        .unwrap_or_default()
}

/// `FROM snap.t AS S WHERE <not in live> AND <filter>`
fn missing(t: &Table, opts: &RecoverOptions) -> String {
    let q = quote(&t.name);
    format!(
        "FROM snap.{q} AS S WHERE NOT EXISTS (SELECT 1 FROM main.{q} AS L WHERE {}){}",
        t.join("L", "S"),
        filter(opts)
    )
}

fn conflicting(t: &Table, opts: &RecoverOptions) -> String {
    let q = quote(&t.name);
    format!(
        "FROM snap.{q} AS S JOIN main.{q} AS L ON {} WHERE ({}){}",
        t.join("L", "S"),
        t.differs("L", "S"),
        filter(opts)
    )
}

fn count(conn: &Connection, t: &Table, opts: &RecoverOptions) -> rusqlite::Result<TableRecovery> {
    let n = |sql: String| {
        conn.query_row(&sql, [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
    };
    Ok(TableRecovery {
        table: t.name.clone(),
        missing: n(format!("SELECT count(*) {}", missing(t, opts)))?,
        conflicts: n(format!("SELECT count(*) {}", conflicting(t, opts)))?,
        ..Default::default()
    })
}

fn plan_sql(
    conn: &Connection,
    t: &Table,
    opts: &RecoverOptions,
    out: &mut Vec<String>,
) -> rusqlite::Result<()> {
    let mut query = |sql: String| -> rusqlite::Result<()> {
        let mut stmt = conn.prepare(&sql)?;
        for line in stmt.query_map([], |r| r.get::<_, String>(0))? {
            out.push(line?);
        }
        Ok(())
    };
    query(format!("SELECT {} {}", t.insert_sql("S"), missing(t, opts)))?;
    if opts.overwrite {
        query(format!(
            "SELECT replace({}, 'INSERT INTO', 'INSERT OR REPLACE INTO') {}",
            t.insert_sql("S"),
            conflicting(t, opts)
        ))?;
    }
    Ok(())
}

/// One transaction: missing rows inserted (conflicts replaced with
/// `overwrite`), foreign keys checked at commit.
fn apply(
    conn: &Connection,
    tables: &[Table],
    opts: &RecoverOptions,
    report: &mut RecoverReport,
) -> rusqlite::Result<()> {
    conn.execute_batch(
        "PRAGMA foreign_keys = ON; BEGIN IMMEDIATE; PRAGMA defer_foreign_keys = ON;",
    )?;
    let result = (|| {
        for (t, r) in tables.iter().zip(&mut report.tables) {
            let cols = t.all_columns().join(", ");
            let q = quote(&t.name);
            let select = |from: String| {
                format!(
                    "SELECT {} {from}",
                    t.all_columns()
                        .iter()
                        .map(|c| format!("S.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            if opts.overwrite {
                r.overwritten = conn.execute(
                    &format!(
                        "INSERT OR REPLACE INTO main.{q}({cols}) {}",
                        select(conflicting(t, opts))
                    ),
                    [],
                )? as u64;
            }
            r.recovered = conn.execute(
                &format!("INSERT INTO main.{q}({cols}) {}", select(missing(t, opts))),
                [],
            )? as u64;
        }
        conn.execute_batch("COMMIT")
    })();
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}
