//! Row-level comparison of two SQLite databases, as SQLite's `sqldiff` does:
//! both are attached to one connection (`main` = A, `b` = B) and compared
//! table by table (by key, or by content for a table without one; see
//! `table`), in SQL, so nothing is held in memory but counts. Rows under a
//! key both hold are told apart as changed or reused (`identity`).

use super::identity::{classify, foreign_keys};
use super::table::{columns, common_tables, count, each_row, list, names, ordinary, quote, schema};
use crate::error::{Error, Result};
use rusqlite::Connection;
use std::path::Path;

/// How one table's rows differ.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct TableDiff {
    /// The table.
    pub table: String,
    /// Rows of B that A lacks (by key; by content for a table without a key).
    pub added: u64,
    /// Rows of A that B lacks.
    pub removed: u64,
    /// Rows under one key in both, with different values: the same row changed.
    pub changed: u64,
    /// Keys in both that hold a different row in B: A's row was deleted
    /// (with its children) and the key taken by a new row.
    pub reused: u64,
}

/// A column added to or removed from a table that both databases have.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ColumnChange {
    /// The table.
    pub table: String,
    /// The column.
    pub column: String,
    /// `added` or `removed`.
    pub change: &'static str,
    /// Values that were not NULL in A (what a removed column lost).
    pub values: u64,
}

/// How one database differs.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct DbDiff {
    /// Its path inside the snapshots.
    pub path: String,
    /// Tables, indexes, views and triggers added, removed or changed.
    pub schema: Vec<String>,
    /// Columns added or removed, with the values a removed one held.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnChange>,
    /// Tables whose rows differ.
    pub tables: Vec<TableDiff>,
    /// With `sql`: statements that turn A's rows into B's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sql: Vec<String>,
}

/// Opens `a` with `b` attached as schema `b` (both read-only).
pub(crate) fn open_pair(a: &Path, a_image: bool, b: &Path, b_image: bool) -> Result<Connection> {
    let uri = |p: &Path, image: bool| {
        format!(
            "file:{}?{}",
            crate::source::sqlite::uri_path(p),
            if image { "immutable=1" } else { "mode=ro" }
        )
    };
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
        | rusqlite::OpenFlags::SQLITE_OPEN_URI
        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(uri(a, a_image), flags).map_err(Error::sqlite(a))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(Error::sqlite(a))?;
    conn.execute("ATTACH ?1 AS b", [uri(b, b_image)])
        .map_err(Error::sqlite(b))?;
    Ok(conn)
}

/// Compares the database `main` (A) with `b` (B) on an opened pair.
pub(crate) fn diff_pair(conn: &Connection, path: &str, sql: bool) -> rusqlite::Result<DbDiff> {
    let mut out = DbDiff {
        path: path.to_string(),
        ..Default::default()
    };
    schema_changes(conn, &mut out)?;
    let tables = common_tables(conn, "b")?;
    let fks = foreign_keys(conn, "main", &tables)?;
    let reused = classify(conn, "main", "b", &tables, &fks)?;
    for (t, reused) in tables.iter().zip(reused) {
        let rows = |q: String| count(conn, &format!("SELECT count(*) FROM ({q})"));
        let conflicts = count(
            conn,
            &format!("SELECT count(*) {}", t.conflicting("main", "1", "b")),
        )?;
        let d = TableDiff {
            table: t.name.clone(),
            added: rows(t.missing("b", "1", "main"))?,
            removed: rows(t.missing("main", "1", "b"))?,
            changed: conflicts - reused,
            reused,
        };
        if sql {
            let sql = &mut out.sql;
            each_row(conn, &t.missing("main", "1", "b"), |v| {
                sql.push(t.delete_stmt(&v))
            })?;
            each_row(conn, &t.missing("b", "1", "main"), |v| {
                sql.push(t.insert_stmt(&t.all(), &v))
            })?;
            let changed = format!(
                "SELECT {} {}",
                list("Y", &t.all()),
                t.conflicting("main", "1", "b")
            );
            each_row(conn, &changed, |v| sql.push(t.update_stmt(&v)))?;
        }
        if d.added + d.removed + d.changed + d.reused > 0 {
            out.tables.push(d);
        }
    }
    Ok(out)
}

/// Schema objects added, removed and changed; for a table in both, the
/// columns added and removed, and how many values a removed one held.
fn schema_changes(conn: &Connection, out: &mut DbDiff) -> rusqlite::Result<()> {
    let (sa, sb) = (schema(conn, "main")?, schema(conn, "b")?);
    let tables_b = ordinary(&sb);
    for (t, n, _, s) in &sa {
        match sb.iter().find(|o| &o.0 == t && &o.1 == n) {
            None => out.schema.push(format!("{t} {n} removed")),
            Some(o) if &o.3 != s => {
                out.schema.push(format!("{t} {n} changed"));
                if t == "table" && tables_b.contains(n) {
                    column_changes(conn, n, out)?;
                }
            }
            _ => {}
        }
    }
    for (t, n, _, _) in &sb {
        if !sa.iter().any(|o| &o.0 == t && &o.1 == n) {
            out.schema.push(format!("{t} {n} added"));
        }
    }
    Ok(())
}

fn column_changes(conn: &Connection, table: &str, out: &mut DbDiff) -> rusqlite::Result<()> {
    let (ca, cb) = (columns(conn, "main", table)?, columns(conn, "b", table)?);
    for c in ca.iter().filter(|c| !cb.iter().any(|d| d.name == c.name)) {
        let values = count(
            conn,
            &format!(
                "SELECT count({}) FROM main.{}",
                quote(&c.name),
                quote(table)
            ),
        )?;
        out.columns.push(ColumnChange {
            table: table.into(),
            column: c.name.clone(),
            change: "removed",
            values,
        });
    }
    for c in cb.iter().filter(|c| !ca.iter().any(|d| d.name == c.name)) {
        out.columns.push(ColumnChange {
            table: table.into(),
            column: c.name.clone(),
            change: "added",
            values: 0,
        });
    }
    Ok(())
}

/// The database at `path` (an image) as SQL text: its schema and every row
/// of its ordinary tables, in one transaction, as `sqlite3 .dump` writes it
/// (virtual tables are created empty: rebuild them after loading).
pub(crate) fn dump_sql(path: &Path, out: &mut impl std::io::Write) -> Result<()> {
    let conn = crate::source::sqlite::open_image(path).map_err(Error::sqlite(path))?;
    let io = |e| Error::io("write", "stdout")(e);
    let objects = schema(&conn, "main").map_err(Error::sqlite(path))?;
    let tables = ordinary(&objects);
    writeln!(out, "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;").map_err(io)?;
    for (t, n, _, sql) in &objects {
        let internal = n.starts_with("sqlite_") || sql.is_empty();
        if t == "table"
            && !internal
            && (tables.contains(n) || sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL"))
        {
            writeln!(out, "{sql};").map_err(io)?;
        }
        if !tables.contains(n) {
            continue;
        }
        let cols: Vec<String> = columns(&conn, "main", n)
            .map_err(Error::sqlite(path))?
            .into_iter()
            .map(|c| c.name)
            .collect();
        let query = format!("SELECT {} FROM main.{}", names(&cols), quote(n));
        let mut failed = None;
        each_row(&conn, &query, |v| {
            if failed.is_none() {
                let line = format!("INSERT INTO {} VALUES({});", quote(n), v.join(","));
                failed = writeln!(out, "{line}").err();
            }
        })
        .map_err(Error::sqlite(path))?;
        if let Some(e) = failed {
            return Err(io(e));
        }
    }
    for (t, n, _, sql) in &objects {
        if t != "table" && !n.starts_with("sqlite_") && !sql.is_empty() {
            writeln!(out, "{sql};").map_err(io)?;
        }
    }
    writeln!(out, "COMMIT;").map_err(io)
}
