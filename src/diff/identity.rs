//! Which rows under a key both sides hold are the same row changed, and
//! which are a different row under an old key: an application that reused
//! the keys a cascade delete freed (a plain `INTEGER PRIMARY KEY` takes
//! `max(rowid) + 1`, so once the newest rows are gone their ids come back).
//!
//! The evidence is the row's children, by the declared foreign keys: a row
//! of the old side that had children there, none of which the new side
//! still holds unchanged, was deleted with them, and the row now under its
//! key is another one ("reused"). A row whose parent was reused, or is gone
//! from the new side, is itself a different row, and so on down. A row without that evidence is "changed".
//! Every set lives in a temporary table of the connection, so nothing but
//! counts is held in memory.

use super::table::{list, names, quote, tuple, Table};
use rusqlite::Connection;

/// A declared foreign key between two of the compared tables.
#[derive(Clone, Debug)]
pub(crate) struct ForeignKey {
    /// Index of the child table.
    pub child: usize,
    pub cols: Vec<String>,
    /// Index of the parent table.
    pub parent: usize,
    pub parent_cols: Vec<String>,
}

/// The foreign keys `db` declares between `tables`, on columns both sides have.
pub(crate) fn foreign_keys(
    conn: &Connection,
    db: &str,
    tables: &[Table],
) -> rusqlite::Result<Vec<ForeignKey>> {
    let mut out = Vec::new();
    for (child, t) in tables.iter().enumerate() {
        let sql = format!("PRAGMA {db}.foreign_key_list({})", quote(&t.name));
        let rows: Vec<(i64, String, String, Option<String>)> = conn
            .prepare(&sql)?
            .query_map([], |r| Ok((r.get(0)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        ids.dedup();
        for id in ids {
            let parts: Vec<_> = rows.iter().filter(|r| r.0 == id).collect();
            let Some(parent) = tables.iter().position(|p| p.name == parts[0].1) else {
                continue;
            };
            let cols: Vec<String> = parts.iter().map(|r| r.2.clone()).collect();
            let parent_cols: Vec<String> = match parts.iter().map(|r| r.3.clone()).collect() {
                Some(c) => c,
                None => tables[parent].key.clone(),
            };
            let shared = |t: &Table, c: &[String]| c.iter().all(|c| t.all().contains(c));
            if !cols.is_empty()
                && cols.len() == parent_cols.len()
                && shared(t, &cols)
                && shared(&tables[parent], &parent_cols)
            {
                out.push(ForeignKey {
                    child,
                    cols,
                    parent,
                    parent_cols,
                });
            }
        }
    }
    Ok(out)
}

/// `temp."snap <what> <i>"`
pub(crate) fn temp(what: &str, i: usize) -> String {
    format!("temp.{}", quote(&format!("snap {what} {i}")))
}

/// Fills `temp."snap reused <i>"` (the key columns of table `i`) with the
/// rows of `old` whose key `new` holds with different values and that are
/// a different row there; returns how many each table has.
pub(crate) fn classify(
    conn: &Connection,
    old: &str,
    new: &str,
    tables: &[Table],
    fks: &[ForeignKey],
) -> rusqlite::Result<Vec<u64>> {
    for (i, t) in tables.iter().enumerate() {
        let reused = temp("reused", i);
        conn.execute_batch(&format!("DROP TABLE IF EXISTS {reused}"))?;
        if !t.keyed() {
            continue;
        }
        // Foreign keys that name this table's key carry the evidence.
        let evidence: Vec<&ForeignKey> = fks
            .iter()
            .filter(|f| f.parent == i && f.parent_cols == t.key)
            .collect();
        let conflicts = format!(
            "SELECT {} FROM {} AS X JOIN {} AS Y ON {} WHERE {}",
            list("X", &t.key),
            t.in_schema(old),
            t.in_schema(new),
            t.same_row("X", "Y"),
            t.differs("X", "Y")
        );
        if evidence.is_empty() {
            conn.execute_batch(&format!("CREATE TABLE {reused} AS {conflicts} AND 0"))?;
            continue;
        }
        let (kids, kept) = (temp("kids", i), temp("kept", i));
        let mut had = Vec::new();
        let mut still = Vec::new();
        for f in &evidence {
            let c = &tables[f.child];
            let not_null = f
                .cols
                .iter()
                .map(|c| format!("{} IS NOT NULL", quote(c)))
                .collect::<Vec<_>>()
                .join(" AND ");
            had.push(format!(
                "SELECT {} FROM {} WHERE {not_null}",
                names(&f.cols),
                c.in_schema(old)
            ));
            still.push(format!(
                "SELECT {} FROM (SELECT {all} FROM {} INTERSECT SELECT {all} FROM {}) WHERE {not_null}",
                names(&f.cols),
                c.in_schema(old),
                c.in_schema(new),
                all = names(&c.all())
            ));
        }
        conn.execute_batch(&format!(
            "DROP TABLE IF EXISTS {kids}; DROP TABLE IF EXISTS {kept};
             CREATE TABLE {kids} AS {};
             CREATE TABLE {kept} AS {};
             CREATE TABLE {reused} AS {conflicts} AND {key} IN (SELECT * FROM {kids})
                 AND {key} NOT IN (SELECT * FROM {kept});
             DROP TABLE {kids}; DROP TABLE {kept};",
            had.join(" UNION "),
            still.join(" UNION "),
            key = tuple("X", &t.key),
        ))?;
    }
    propagate(conn, old, new, tables, fks)?;
    tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if t.keyed() {
                super::table::count(conn, &format!("SELECT count(*) FROM {}", temp("reused", i)))
            } else {
                Ok(0)
            }
        })
        .collect()
}

/// A row under a shared key whose parent (on the old side) was reused, or
/// is gone from the new side, is a different row too: the new side's row
/// under its key hangs from another parent.
fn propagate(
    conn: &Connection,
    old: &str,
    new: &str,
    tables: &[Table],
    fks: &[ForeignKey],
) -> rusqlite::Result<()> {
    loop {
        let mut added = 0;
        for f in fks {
            let (c, p) = (&tables[f.child], &tables[f.parent]);
            if !c.keyed() {
                continue;
            }
            let parent_reused = if p.keyed() {
                format!(
                    "{} IN (SELECT * FROM {}) OR ",
                    tuple("P", &p.key),
                    temp("reused", f.parent)
                )
            } else {
                String::new()
            };
            added += conn.execute(
                &format!(
                    "INSERT INTO {rc} SELECT {ckey} FROM {} AS X JOIN {} AS Y ON {} WHERE {}
                     AND {ctuple} NOT IN (SELECT * FROM {rc})
                     AND EXISTS (SELECT 1 FROM {} AS P WHERE {pcols} = {fk}
                         AND ({parent_reused}NOT EXISTS (SELECT 1 FROM {} AS N WHERE {ncols} = {fk})))",
                    c.in_schema(old),
                    c.in_schema(new),
                    c.same_row("X", "Y"),
                    c.differs("X", "Y"),
                    p.in_schema(old),
                    p.in_schema(new),
                    rc = temp("reused", f.child),
                    ckey = list("X", &c.key),
                    ctuple = tuple("X", &c.key),
                    pcols = tuple("P", &f.parent_cols),
                    ncols = tuple("N", &f.parent_cols),
                    fk = tuple("X", &f.cols),
                ),
                [],
            )?;
        }
        if added == 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::table::common_tables;
    use super::*;

    const SCHEMA: &str = "CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE notes(id INTEGER PRIMARY KEY, person INTEGER REFERENCES people(id), body TEXT);
        CREATE TABLE tags(note INTEGER REFERENCES notes(id), tag TEXT);";

    // Old: two people with notes. New: person 1 renamed (one of their
    // notes is still there unchanged); person 2 deleted with their notes,
    // and a new person took id 2, with a new note under the old note's id.
    #[test]
    fn a_reused_key_is_told_from_a_changed_row() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&format!(
            "{SCHEMA} INSERT INTO people VALUES (1,'Ann'),(2,'Bob');
             INSERT INTO notes VALUES (10,1,'a'),(11,1,'b'),(20,2,'c');"
        ))
        .unwrap();
        conn.execute("ATTACH ':memory:' AS b", []).unwrap();
        conn.execute_batch(&format!(
            "{} INSERT INTO b.people VALUES (1,'Ann B'),(2,'Zed');
             INSERT INTO b.notes VALUES (10,1,'a'),(11,1,'b2'),(20,2,'new');",
            SCHEMA.replace("TABLE ", "TABLE b.")
        ))
        .unwrap();
        let tables = common_tables(&conn, "b").unwrap();
        let fks = foreign_keys(&conn, "main", &tables).unwrap();
        assert_eq!(fks.len(), 2);
        let reused = classify(&conn, "main", "b", &tables, &fks).unwrap();
        // people 2 is reused; notes 20 hangs from it, so it is too; note 11
        // changed under a person who is still the same.
        let at = |name: &str| tables.iter().position(|t| t.name == name).unwrap();
        assert_eq!((reused[at("people")], reused[at("notes")]), (1, 1));
        let id = |table: &str| -> i64 {
            let sql = format!("SELECT id FROM {}", temp("reused", at(table)));
            conn.query_row(&sql, [], |r| r.get(0)).unwrap()
        };
        assert_eq!((id("people"), id("notes")), (2, 20));
    }
}
