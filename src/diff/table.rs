//! One table as two attached databases see it: its key, the columns both
//! sides have, and the SQL that compares and copies its rows.
//!
//! Invariants:
//! - rows of a table with a declared key are matched by that key; rows of a
//!   table without one are matched by content, with multiplicity (their
//!   rowids mean nothing: `VACUUM` renumbers them);
//! - comparisons of many columns are row values (`(a, b) IS (c, d)`), whose
//!   parse tree stays shallow however wide the table (SQLite refuses
//!   expression trees deeper than 1,000), so every query here works up to
//!   SQLite's column limit; SQL text is built in Rust, not by `||` chains.

use rusqlite::types::ValueRef;
use rusqlite::Connection;

/// One table as both sides see it.
#[derive(Clone, Debug)]
pub(crate) struct Table {
    pub name: String,
    /// Declared key columns, in key order; empty when the table has none.
    pub key: Vec<String>,
    /// Non-key columns both sides have, in the table's order.
    pub columns: Vec<String>,
    /// The key is one column of integer affinity: a row can take a new key.
    pub integer_key: bool,
}

/// A schema object: (type, name, table it belongs to, sql).
pub(crate) type Object = (String, String, String, String);

pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Schema objects of one attached schema, by type and name.
pub(crate) fn schema(conn: &Connection, db: &str) -> rusqlite::Result<Vec<Object>> {
    conn.prepare(&format!(
        "SELECT type, name, tbl_name, coalesce(sql, '') FROM {db}.sqlite_schema ORDER BY type, name"
    ))?
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
    .collect()
}

/// Ordinary tables: not SQLite's own, not virtual, not a virtual table's shadow.
pub(crate) fn ordinary(objects: &[Object]) -> Vec<String> {
    let virtual_sql = |sql: &str| sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL");
    let virtuals: Vec<&str> = objects
        .iter()
        .filter(|o| virtual_sql(&o.3))
        .map(|o| o.1.as_str())
        .collect();
    objects
        .iter()
        .filter(|(t, n, _, sql)| {
            t == "table"
                && !n.starts_with("sqlite_")
                && !virtual_sql(sql)
                && !virtuals.iter().any(|v| n.starts_with(&format!("{v}_")))
        })
        .map(|o| o.1.clone())
        .collect()
}

/// A column as `PRAGMA table_info` gives it (generated columns excluded).
#[derive(Clone, Debug)]
pub(crate) struct Column {
    pub name: String,
    pub decl_type: String,
    /// Position in the primary key (0: not in it).
    pub pk: i64,
}

pub(crate) fn columns(conn: &Connection, db: &str, table: &str) -> rusqlite::Result<Vec<Column>> {
    conn.prepare(&format!("PRAGMA {db}.table_info({})", quote(table)))?
        .query_map([], |r| {
            Ok(Column {
                name: r.get(1)?,
                decl_type: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                pk: r.get(5)?,
            })
        })?
        .collect()
}

/// The tables both `main` and the schema attached as `other` have, with
/// their keys (`main`'s) and shared columns.
pub(crate) fn common_tables(conn: &Connection, other: &str) -> rusqlite::Result<Vec<Table>> {
    let in_other = ordinary(&schema(conn, other)?);
    let mut out = Vec::new();
    for name in ordinary(&schema(conn, "main")?) {
        if in_other.contains(&name) {
            out.push(Table::read(conn, "main", other, &name)?);
        }
    }
    Ok(out)
}

impl Table {
    /// `name` as schemas `a` and `b` both see it (`a`'s key).
    pub fn read(conn: &Connection, a: &str, b: &str, name: &str) -> rusqlite::Result<Table> {
        let (ca, cb) = (columns(conn, a, name)?, columns(conn, b, name)?);
        let mut pk: Vec<&Column> = ca.iter().filter(|c| c.pk > 0).collect();
        pk.sort_by_key(|c| c.pk);
        let key: Vec<String> = pk.iter().map(|c| c.name.clone()).collect();
        let integer_key = pk.len() == 1 && pk[0].decl_type.to_ascii_uppercase().contains("INT");
        let columns = ca
            .iter()
            .filter(|c| c.pk == 0 && cb.iter().any(|d| d.name == c.name))
            .map(|c| c.name.clone())
            .collect();
        Ok(Table {
            name: name.to_string(),
            key,
            columns,
            integer_key,
        })
    }

    pub(crate) fn keyed(&self) -> bool {
        !self.key.is_empty()
    }

    /// Every column copied: the key first, then the shared columns.
    pub fn all(&self) -> Vec<String> {
        self.key.iter().chain(&self.columns).cloned().collect()
    }

    /// `"t"` in schema `db`.
    pub(crate) fn in_schema(&self, db: &str) -> String {
        format!("{db}.{}", quote(&self.name))
    }

    /// Rows of `X` and `Y` that are the same row: equal keys (each column
    /// compared alone, so SQLite uses the key's index), or equal content
    /// for a table without a key.
    pub(crate) fn same_row(&self, x: &str, y: &str) -> String {
        if self.key.is_empty() {
            return format!("{} IS {}", tuple(x, &self.columns), tuple(y, &self.columns));
        }
        self.key
            .iter()
            .map(|k| format!("{x}.{0} IS {y}.{0}", quote(k)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// Rows under one key whose other values differ.
    pub fn differs(&self, x: &str, y: &str) -> String {
        if self.columns.is_empty() {
            return "0".into();
        }
        format!(
            "{} IS NOT {}",
            tuple(x, &self.columns),
            tuple(y, &self.columns)
        )
    }

    /// A query of every column (`all`) of the rows of `from` (filtered by
    /// `filter`, columns by name) that `other` lacks: by key, or for a table
    /// without one, each content as many more times as `from` holds it.
    pub fn missing(&self, from: &str, filter: &str, other: &str) -> String {
        let all = names(&self.all());
        if self.keyed() {
            return format!(
                "SELECT {} FROM (SELECT * FROM {} WHERE {filter}) AS X \
                 WHERE NOT EXISTS (SELECT 1 FROM {} AS Y WHERE {})",
                list("X", &self.all()),
                self.in_schema(from),
                self.in_schema(other),
                self.same_row("Y", "X")
            );
        }
        format!(
            "SELECT {all} FROM (SELECT {all}, row_number() OVER (PARTITION BY {all}) AS \"snap n\" \
             FROM {} WHERE {filter} EXCEPT SELECT {all}, row_number() OVER (PARTITION BY {all}) \
             FROM {})",
            self.in_schema(from),
            self.in_schema(other)
        )
    }

    /// `FROM` clause of rows under one key in both with different values:
    /// `X` from `from` (filtered), `Y` from `other`.
    pub fn conflicting(&self, from: &str, filter: &str, other: &str) -> String {
        format!(
            "FROM (SELECT * FROM {} WHERE {filter}) AS X JOIN {} AS Y ON {} WHERE {}",
            self.in_schema(from),
            self.in_schema(other),
            self.same_row("X", "Y"),
            self.differs("X", "Y")
        )
    }

    /// `INSERT INTO t(cols) VALUES(...);` for one row of `all` values.
    pub(crate) fn insert_stmt(&self, cols: &[String], values: &[String]) -> String {
        format!(
            "INSERT INTO {}({}) VALUES({});",
            quote(&self.name),
            names(cols),
            values.join(",")
        )
    }

    /// A statement that deletes one row (`values` of `all`).
    pub(crate) fn delete_stmt(&self, values: &[String]) -> String {
        if self.keyed() {
            return format!(
                "DELETE FROM {} WHERE {};",
                quote(&self.name),
                self.key_cond(values)
            );
        }
        format!(
            "DELETE FROM {0} WHERE rowid IN (SELECT rowid FROM {0} WHERE ({1}) IS ({2}) LIMIT 1);",
            quote(&self.name),
            names(&self.columns),
            values.join(",")
        )
    }

    /// A statement that gives the row under `values`' key its other values.
    pub(crate) fn update_stmt(&self, values: &[String]) -> String {
        let sets: Vec<String> = self
            .columns
            .iter()
            .zip(&values[self.key.len()..])
            .map(|(c, v)| format!("{} = {v}", quote(c)))
            .collect();
        format!(
            "UPDATE {} SET {} WHERE {};",
            quote(&self.name),
            sets.join(", "),
            self.key_cond(values)
        )
    }

    fn key_cond(&self, values: &[String]) -> String {
        self.key
            .iter()
            .zip(values)
            .map(|(k, v)| format!("{} IS {v}", quote(k)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }
}

/// `"a", "b"`
pub(crate) fn names(cols: &[String]) -> String {
    cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
}

/// `X."a", X."b"`
pub(crate) fn list(alias: &str, cols: &[String]) -> String {
    cols.iter()
        .map(|c| format!("{alias}.{}", quote(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `(X."a", X."b")`: a row value (a plain value for one column).
pub(crate) fn tuple(alias: &str, cols: &[String]) -> String {
    format!("({})", list(alias, cols))
}

/// A value as an SQL literal that reads back as the same value and type.
pub(crate) fn literal(v: ValueRef) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) if f.is_infinite() => if f > 0.0 { "9e999" } else { "-9e999" }.into(),
        ValueRef::Real(f) => format!("{f:?}"),
        ValueRef::Text(t) => format!("'{}'", String::from_utf8_lossy(t).replace('\'', "''")),
        ValueRef::Blob(b) => format!("X'{}'", hex::encode_upper(b)),
    }
}

/// Runs `sql` and calls `each` with every row's values as SQL literals.
pub(crate) fn each_row(
    conn: &Connection,
    sql: &str,
    mut each: impl FnMut(Vec<String>),
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(sql)?;
    let n = stmt.column_count();
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        each(
            (0..n)
                .map(|i| row.get_ref(i).map(literal))
                .collect::<rusqlite::Result<_>>()?,
        );
    }
    Ok(())
}

pub(crate) fn count(conn: &Connection, sql: &str) -> rusqlite::Result<u64> {
    conn.query_row(sql, [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(a: &str, b: &str) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(a).unwrap();
        conn.execute("ATTACH ':memory:' AS b", []).unwrap();
        conn.execute_batch(b).unwrap();
        conn
    }

    // A table without a key after VACUUM: its rowids were renumbered, so
    // rows are matched by content, and a row held twice that is now held
    // once is missing once.
    #[test]
    fn rows_without_a_key_are_matched_by_content_with_multiplicity() {
        let conn = pair(
            "CREATE TABLE t(a, b); INSERT INTO t VALUES (1,'x'),(1,'x'),(2,NULL),(3,'z');",
            "CREATE TABLE b.t(a, b); INSERT INTO b.t VALUES (3,'z'),(1,'x'),(2,NULL);",
        );
        let t = &common_tables(&conn, "b").unwrap()[0];
        assert!(!t.keyed());
        let q = format!("SELECT count(*) FROM ({})", t.missing("main", "1", "b"));
        assert_eq!(count(&conn, &q).unwrap(), 1);
        let q = format!("SELECT count(*) FROM ({})", t.missing("b", "1", "main"));
        assert_eq!(count(&conn, &q).unwrap(), 0);
    }

    // SQLite refuses expression trees deeper than 1,000: a table of 1,500
    // columns is still compared, and its rows printed as SQL.
    #[test]
    fn wide_tables_are_compared() {
        let cols: Vec<String> = (0..1500).map(|i| format!("c{i}")).collect();
        let create = format!(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, {});",
            cols.join(",")
        );
        let values = |x: i64| (0..1500).map(|i| (i + x).to_string()).collect::<Vec<_>>();
        let conn = pair(
            &format!(
                "{create} INSERT INTO t VALUES (1, {});",
                values(0).join(",")
            ),
            &format!(
                "{} INSERT INTO b.t VALUES (1, {});",
                create.replace("TABLE t", "TABLE b.t"),
                values(1).join(",")
            ),
        );
        let t = &common_tables(&conn, "b").unwrap()[0];
        assert!(t.integer_key);
        let q = format!("SELECT count(*) {}", t.conflicting("main", "1", "b"));
        assert_eq!(count(&conn, &q).unwrap(), 1);
        let mut stmts = Vec::new();
        let q = format!(
            "SELECT {} {}",
            list("Y", &t.all()),
            t.conflicting("main", "1", "b")
        );
        each_row(&conn, &q, |v| stmts.push(t.update_stmt(&v))).unwrap();
        conn.execute_batch(&stmts[0]).unwrap();
        let q = format!("SELECT count(*) {}", t.conflicting("main", "1", "b"));
        assert_eq!(count(&conn, &q).unwrap(), 0);
    }

    #[test]
    fn literals_read_back_as_the_same_value() {
        let conn = Connection::open_in_memory().unwrap();
        for v in [
            "NULL", "0", "-7", "1.5", "1e300", "'it''s'", "X'00FF'", "0.1", "9e999",
        ] {
            let (a, b): (String, String) = conn
                .query_row(&format!("SELECT quote({v}), typeof({v})"), [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap();
            let lit: String = conn
                .query_row(&format!("SELECT {v}"), [], |r| Ok(literal(r.get_ref(0)?)))
                .unwrap();
            let (c, d): (String, String) = conn
                .query_row(&format!("SELECT quote({lit}), typeof({lit})"), [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap();
            assert_eq!((a, b), (c, d), "{v} -> {lit}");
        }
    }
}
