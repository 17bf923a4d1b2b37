//! The plan of a recovery: per table, the snapshot's rows to write back
//! and how, in a temporary table `temp."snap ins <i>"` (every copied column,
//! then `"snap how"`: 0 under its own key, 1 under a new key, 2 replacing
//! the live row), and the rows that cannot come back, with why.
//!
//! Invariant: no row is written under a parent it did not have. A row
//! whose foreign key names a parent is kept in the plan only while that
//! parent is written by the plan too, or is in the live database as the
//! same row the snapshot has (`identity`); every other row is removed from
//! the plan, and so, in turn, are the rows that hung from it.

use crate::diff::identity::{classify, temp, ForeignKey};
use crate::diff::table::{count, each_row, list, names, quote, tuple, Table};
use rusqlite::Connection;

/// How a planned row is written.
pub(crate) const OWN_KEY: i64 = 0;
pub(crate) const NEW_KEY: i64 = 1;
pub(crate) const REPLACE: i64 = 2;

/// What the plan found in one table.
#[derive(Debug, Default, Clone)]
pub(crate) struct Found {
    /// Rows whose key the live table lacks (by content, for a table without a key).
    pub missing: u64,
    /// Keys in both with other values: the same row, changed.
    pub conflicts: u64,
    /// Keys in both holding a different row now.
    pub reused: u64,
    /// Planned rows removed because of their parents.
    pub blocked: u64,
    /// Why, for the first few.
    pub blocked_examples: Vec<String>,
}

/// What the plan needs to know.
pub(crate) struct Inputs<'a> {
    /// Every table the snapshot and the live database share (`main`'s view).
    pub tables: &'a [Table],
    /// Indexes into `tables` of those to recover.
    pub selected: &'a [usize],
    /// The live database's foreign keys between `tables`.
    pub fks: &'a [ForeignKey],
    /// SQL condition on the snapshot's rows (`1` for all).
    pub filter: &'a str,
    pub remap: bool,
    pub overwrite: bool,
}

/// Builds the plan in temporary tables; returns what it found, per table
/// of `inputs.tables` (all zero for tables not selected).
pub(crate) fn plan(conn: &Connection, inputs: &Inputs) -> rusqlite::Result<Vec<Found>> {
    drop_temporaries(conn)?;
    let (tables, filter) = (inputs.tables, inputs.filter);
    classify(conn, "snap", "main", tables, inputs.fks)?;
    let mut found = vec![Found::default(); tables.len()];
    for (i, t) in tables.iter().enumerate() {
        let ins = temp("ins", i);
        if !inputs.selected.contains(&i) {
            continue;
        }
        conn.execute_batch(&format!(
            "CREATE TABLE {ins} AS SELECT *, {OWN_KEY} AS \"snap how\" FROM ({})",
            t.missing("snap", filter, "main")
        ))?;
        found[i].missing = count(conn, &format!("SELECT count(*) FROM {ins}"))?;
        if !t.keyed() {
            continue;
        }
        let in_reused = format!(
            "{} IN (SELECT * FROM {})",
            tuple("X", &t.key),
            temp("reused", i)
        );
        let conflicts = t.conflicting("snap", filter, "main");
        found[i].reused = count(
            conn,
            &format!("SELECT count(*) {conflicts} AND {in_reused}"),
        )?;
        found[i].conflicts =
            count(conn, &format!("SELECT count(*) {conflicts}"))? - found[i].reused;
        let add = |how: i64, cond: String| {
            conn.execute(
                &format!(
                    "INSERT INTO {ins} SELECT {}, {how} {conflicts} AND {cond}",
                    list("X", &t.all())
                ),
                [],
            )
        };
        if inputs.remap && t.integer_key {
            add(NEW_KEY, in_reused.clone())?;
        }
        if inputs.overwrite {
            add(REPLACE, format!("NOT {in_reused}"))?;
        }
    }
    let before: Vec<u64> = planned(conn, tables)?;
    block(conn, inputs, &mut found)?;
    for (i, n) in planned(conn, tables)?.into_iter().enumerate() {
        found[i].blocked = before[i] - n;
    }
    Ok(found)
}

/// Rows in each table's plan.
fn planned(conn: &Connection, tables: &[Table]) -> rusqlite::Result<Vec<u64>> {
    (0..tables.len())
        .map(|i| {
            if exists(conn, i)? {
                count(conn, &format!("SELECT count(*) FROM {}", temp("ins", i)))
            } else {
                Ok(0)
            }
        })
        .collect()
}

fn exists(conn: &Connection, i: usize) -> rusqlite::Result<bool> {
    let name = format!("snap ins {i}");
    Ok(count(
        conn,
        &format!(
            "SELECT count(*) FROM temp.sqlite_schema WHERE name = '{}'",
            name.replace('\'', "''")
        ),
    )? > 0)
}

/// Removes from the plan, until none is left, every row whose parent is
/// neither planned nor the same row in the live database.
fn block(conn: &Connection, inputs: &Inputs, found: &mut [Found]) -> rusqlite::Result<()> {
    let tables = inputs.tables;
    loop {
        let mut removed = 0;
        for f in inputs.fks {
            if !exists(conn, f.child)? {
                continue;
            }
            let (c, p) = (&tables[f.child], &tables[f.parent]);
            let fk = tuple("I", &f.cols);
            let planned_parent = if exists(conn, f.parent)? {
                format!(
                    "EXISTS (SELECT 1 FROM {} AS Q WHERE {} = {fk})",
                    temp("ins", f.parent),
                    tuple("Q", &f.parent_cols)
                )
            } else {
                "0".into()
            };
            let not_reused = if p.keyed() {
                format!(
                    "AND {} NOT IN (SELECT * FROM {})",
                    tuple("S", &p.key),
                    temp("reused", f.parent)
                )
            } else {
                String::new()
            };
            let bad = format!(
                "FROM {ins} AS I WHERE {not_null} AND NOT ({planned_parent}
                   OR (EXISTS (SELECT 1 FROM {live} AS L WHERE {lp} = {fk})
                       AND EXISTS (SELECT 1 FROM {snap} AS S WHERE {sp} = {fk} {not_reused})))",
                ins = temp("ins", f.child),
                not_null = f
                    .cols
                    .iter()
                    .map(|c| format!("I.{} IS NOT NULL", quote(c)))
                    .collect::<Vec<_>>()
                    .join(" AND "),
                live = p.in_schema("main"),
                snap = p.in_schema("snap"),
                lp = tuple("L", &f.parent_cols),
                sp = tuple("S", &f.parent_cols),
            );
            let examples = &mut found[f.child].blocked_examples;
            if examples.len() < 5 {
                let name = row_name(c);
                let sql = format!(
                    "SELECT {}, {}, EXISTS (SELECT 1 FROM {} AS L WHERE {} = {fk}) {bad} LIMIT 5",
                    list("I", &name),
                    list("I", &f.cols),
                    p.in_schema("main"),
                    tuple("L", &f.parent_cols)
                );
                each_row(conn, &sql, |v| {
                    let (row, rest) = v.split_at(name.len());
                    let (fk, live) = rest.split_at(f.cols.len());
                    if examples.len() < 5 {
                        examples.push(why(c, row, p, &f.parent_cols, fk, live[0] == "1"));
                    }
                })?;
            }
            removed += conn.execute(
                &format!(
                    "DELETE FROM {} WHERE rowid IN (SELECT I.rowid {bad})",
                    temp("ins", f.child)
                ),
                [],
            )?;
        }
        if removed == 0 {
            return Ok(());
        }
    }
}

/// The columns that name a row in messages: its key, else all of it.
fn row_name(t: &Table) -> Vec<String> {
    if t.keyed() {
        t.key.clone()
    } else {
        t.columns.clone()
    }
}

fn why(c: &Table, row: &[String], p: &Table, cols: &[String], fk: &[String], live: bool) -> String {
    let at = |t: &Table, cols: &[String], v: &[String]| {
        format!("{} ({}) = ({})", t.name, names(cols), v.join(", "))
    };
    let (row, parent) = (at(c, &row_name(c), row), at(p, cols, fk));
    if live {
        format!("{row}: its parent {parent} is a different row in the live database now")
    } else {
        format!("{row}: its parent {parent} is not in the live database and is not being recovered")
    }
}

/// Drops the temporary tables of an earlier plan on this connection.
pub(crate) fn drop_temporaries(conn: &Connection) -> rusqlite::Result<()> {
    let names: Vec<String> = conn
        .prepare("SELECT name FROM temp.sqlite_schema WHERE type = 'table' AND name LIKE 'snap %'")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for n in names {
        conn.execute_batch(&format!("DROP TABLE temp.{}", quote(&n)))?;
    }
    Ok(())
}
