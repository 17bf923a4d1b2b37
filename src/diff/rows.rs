//! Row-level comparison of two SQLite databases, as SQLite's `sqldiff` does:
//! both are attached to one connection (`main` = A, `b` = B) and compared
//! table by table on each table's key (its PRIMARY KEY, or the rowid), in SQL,
//! so nothing is held in memory but counts.

use crate::error::{Error, Result};
use rusqlite::Connection;
use std::path::Path;

/// How one table's rows differ.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct TableDiff {
    /// The table.
    pub table: String,
    /// Rows of B whose key A lacks.
    pub added: u64,
    /// Rows of A whose key B lacks.
    pub removed: u64,
    /// Rows under one key in both, with different values.
    pub changed: u64,
}

/// How one database differs.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct DbDiff {
    /// Its path inside the snapshots.
    pub path: String,
    /// Tables, indexes, views and triggers added, removed or changed.
    pub schema: Vec<String>,
    /// Tables whose rows differ.
    pub tables: Vec<TableDiff>,
    /// With `sql`: statements that turn A's rows into B's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sql: Vec<String>,
}

/// One table as both databases see it.
pub(crate) struct Table {
    pub name: String,
    /// Key columns (`rowid` for a rowid table without a declared key).
    pub key: Vec<String>,
    /// Non-key columns both databases have.
    pub columns: Vec<String>,
}

pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
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

/// Schema objects (type, name) → sql, of one attached schema.
fn schema(conn: &Connection, db: &str) -> rusqlite::Result<Vec<(String, String, String)>> {
    conn.prepare(&format!(
        "SELECT type, name, coalesce(sql, '') FROM {db}.sqlite_schema ORDER BY type, name"
    ))?
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
    .collect()
}

/// Ordinary tables: not SQLite's own, not virtual, not a virtual table's shadow.
fn ordinary(objects: &[(String, String, String)]) -> Vec<String> {
    let virtuals: Vec<&str> = objects
        .iter()
        .filter(|(_, _, sql)| sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL"))
        .map(|(_, n, _)| n.as_str())
        .collect();
    objects
        .iter()
        .filter(|(t, n, sql)| {
            t == "table"
                && !n.starts_with("sqlite_")
                && !sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL")
                && !virtuals.iter().any(|v| n.starts_with(&format!("{v}_")))
        })
        .map(|(_, n, _)| n.clone())
        .collect()
}

/// Columns of `table` in `db`: (name, pk position).
fn columns(conn: &Connection, db: &str, table: &str) -> rusqlite::Result<Vec<(String, i64)>> {
    conn.prepare(&format!("PRAGMA {db}.table_info({})", quote(table)))?
        .query_map([], |r| Ok((r.get(1)?, r.get(5)?)))?
        .collect()
}

/// The tables both `main` and the schema attached as `other` have, with
/// their keys and shared columns.
pub(crate) fn common_tables(conn: &Connection, other: &str) -> rusqlite::Result<Vec<Table>> {
    let (a, b) = (schema(conn, "main")?, schema(conn, other)?);
    let in_b = ordinary(&b);
    let mut out = Vec::new();
    for name in ordinary(&a).into_iter().filter(|n| in_b.contains(n)) {
        let (ca, cb) = (columns(conn, "main", &name)?, columns(conn, other, &name)?);
        let mut pk: Vec<(i64, String)> = ca
            .iter()
            .filter(|(_, p)| *p > 0)
            .map(|(n, p)| (*p, n.clone()))
            .collect();
        pk.sort();
        // A declared key (an INTEGER PRIMARY KEY is the rowid under its own
        // name; WITHOUT ROWID tables always have one); else the rowid.
        let key = if pk.is_empty() {
            vec!["rowid".to_string()]
        } else {
            pk.into_iter().map(|(_, n)| n).collect()
        };
        let columns = ca
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| !key.contains(n) && cb.iter().any(|(m, _)| m == n))
            .collect();
        out.push(Table { name, key, columns });
    }
    Ok(out)
}

impl Table {
    /// `X.k1 IS Y.k1 AND ...`
    pub fn join(&self, x: &str, y: &str) -> String {
        self.key
            .iter()
            .map(|k| {
                let k = if k == "rowid" { k.clone() } else { quote(k) };
                format!("{x}.{k} IS {y}.{k}")
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// `X.c1 IS NOT Y.c1 OR ...` (false when there is no other column).
    pub fn differs(&self, x: &str, y: &str) -> String {
        if self.columns.is_empty() {
            return "0".into();
        }
        self.columns
            .iter()
            .map(|c| format!("{x}.{0} IS NOT {y}.{0}", quote(c)))
            .collect::<Vec<_>>()
            .join(" OR ")
    }

    /// Every column to copy, key first (`rowid` included for rowid tables).
    pub fn all_columns(&self) -> Vec<String> {
        self.key
            .iter()
            .map(|k| if k == "rowid" { k.clone() } else { quote(k) })
            .chain(self.columns.iter().map(|c| quote(c)))
            .collect()
    }

    fn key_cond(&self, alias: &str) -> String {
        let parts: Vec<String> = self
            .key
            .iter()
            .map(|k| {
                let col = if k == "rowid" { k.clone() } else { quote(k) };
                format!("'{} IS ' || quote({alias}.{col})", col.replace('\'', "''"))
            })
            .collect();
        parts.join(" || ' AND ' || ")
    }

    /// SQL (a query returning one statement per row) that inserts `alias`'s row.
    pub fn insert_sql(&self, alias: &str) -> String {
        let cols = self.all_columns();
        let values: Vec<String> = cols.iter().map(|c| format!("quote({alias}.{c})")).collect();
        format!(
            "'INSERT INTO {}({}) VALUES(' || {} || ');'",
            quote(&self.name).replace('\'', "''"),
            cols.join(",").replace('\'', "''"),
            values.join(" || ',' || ")
        )
    }

    fn delete_sql(&self, alias: &str) -> String {
        format!(
            "'DELETE FROM {} WHERE ' || {} || ';'",
            quote(&self.name).replace('\'', "''"),
            self.key_cond(alias)
        )
    }

    fn update_sql(&self, alias: &str) -> String {
        let sets: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                format!(
                    "'{} = ' || quote({alias}.{})",
                    quote(c).replace('\'', "''"),
                    quote(c)
                )
            })
            .collect();
        format!(
            "'UPDATE {} SET ' || {} || ' WHERE ' || {} || ';'",
            quote(&self.name).replace('\'', "''"),
            sets.join(" || ', ' || "),
            self.key_cond(alias)
        )
    }
}

fn count(conn: &Connection, sql: &str) -> rusqlite::Result<u64> {
    conn.query_row(sql, [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

fn lines(conn: &Connection, sql: &str, out: &mut Vec<String>) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    for r in rows {
        out.push(r?);
    }
    Ok(())
}

/// Compares the database `main` (A) with `b` (B) on an opened pair.
pub(crate) fn diff_pair(conn: &Connection, path: &str, sql: bool) -> rusqlite::Result<DbDiff> {
    let mut out = DbDiff {
        path: path.to_string(),
        ..Default::default()
    };
    let (sa, sb) = (schema(conn, "main")?, schema(conn, "b")?);
    for (t, n, s) in &sa {
        match sb.iter().find(|(u, m, _)| u == t && m == n) {
            None => out.schema.push(format!("{t} {n} removed")),
            Some((_, _, s2)) if s2 != s => out.schema.push(format!("{t} {n} changed")),
            _ => {}
        }
    }
    for (t, n, _) in &sb {
        if !sa.iter().any(|(u, m, _)| u == t && m == n) {
            out.schema.push(format!("{t} {n} added"));
        }
    }
    for t in common_tables(conn, "b")? {
        let q = quote(&t.name);
        let missing = |x: &str, y: &str| {
            format!(
                "FROM {x}.{q} AS X WHERE NOT EXISTS (SELECT 1 FROM {y}.{q} AS Y WHERE {})",
                t.join("X", "Y")
            )
        };
        let changed = format!(
            "FROM main.{q} AS A JOIN b.{q} AS B ON {} WHERE {}",
            t.join("A", "B"),
            t.differs("A", "B")
        );
        let d = TableDiff {
            table: t.name.clone(),
            added: count(conn, &format!("SELECT count(*) {}", missing("b", "main")))?,
            removed: count(conn, &format!("SELECT count(*) {}", missing("main", "b")))?,
            changed: count(conn, &format!("SELECT count(*) {changed}"))?,
        };
        if sql {
            lines(
                conn,
                &format!("SELECT {} {}", t.delete_sql("X"), missing("main", "b")),
                &mut out.sql,
            )?;
            lines(
                conn,
                &format!("SELECT {} {}", t.insert_sql("X"), missing("b", "main")),
                &mut out.sql,
            )?;
            if !t.columns.is_empty() {
                lines(
                    conn,
                    &format!("SELECT {} {changed}", t.update_sql("B")),
                    &mut out.sql,
                )?;
            }
        }
        if d.added + d.removed + d.changed > 0 {
            out.tables.push(d);
        }
    }
    Ok(out)
}

/// The database at `path` (an image) as SQL text: its schema and every row
/// of its ordinary tables, in one transaction, as `sqlite3 .dump` writes it
/// (virtual tables are created empty: rebuild them after loading).
pub fn dump_sql(path: &Path, out: &mut impl std::io::Write) -> Result<()> {
    let conn = crate::source::sqlite::open_image(path).map_err(Error::sqlite(path))?;
    let io = |e| Error::io("write", "stdout")(e);
    let objects = schema(&conn, "main").map_err(Error::sqlite(path))?;
    let tables = ordinary(&objects);
    writeln!(out, "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;").map_err(io)?;
    for (t, n, sql) in &objects {
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
            .map(|(c, _)| format!("quote({})", quote(&c)))
            .collect();
        let q = format!(
            "SELECT 'INSERT INTO {} VALUES(' || {} || ');' FROM {}",
            quote(n).replace('\'', "''"),
            cols.join(" || ',' || "),
            quote(n)
        );
        let mut stmt = conn.prepare(&q).map_err(Error::sqlite(path))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(Error::sqlite(path))?;
        for r in rows {
            writeln!(out, "{}", r.map_err(Error::sqlite(path))?).map_err(io)?;
        }
    }
    for (t, n, sql) in &objects {
        if t != "table" && !n.starts_with("sqlite_") && !sql.is_empty() {
            writeln!(out, "{sql};").map_err(io)?;
        }
    }
    writeln!(out, "COMMIT;").map_err(io)
}
