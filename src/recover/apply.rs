//! Carrying out a plan, or printing it as SQL. Rows that take a new key get
//! theirs first (`temp."snap map <i>"`: old, new), above every key the live
//! table, the snapshot and AUTOINCREMENT's counter have used, so a new key
//! never collides with a row written back under its own; then every
//! foreign key that names such a row is re-pointed to its new key as the
//! rows are written. A replaced row is updated in place, never deleted and
//! inserted again (`INSERT OR REPLACE` would cascade-delete its children).

use super::plan::{NEW_KEY, OWN_KEY, REPLACE};
use crate::diff::identity::{temp, ForeignKey};
use crate::diff::table::{count, each_row, list, names, quote, Table};
use rusqlite::Connection;

/// What was (or would be) written to one table.
#[derive(Debug, Default, Clone)]
pub(crate) struct Written {
    pub recovered: u64,
    pub remapped: u64,
    pub overwritten: u64,
    /// Old key -> new key of the rows written under a new key.
    pub new_keys: Vec<(i64, i64)>,
}

/// The tables of a plan, and the foreign keys between them.
pub(crate) struct Planned<'a> {
    pub tables: &'a [Table],
    pub selected: &'a [usize],
    pub fks: &'a [ForeignKey],
}

impl Planned<'_> {
    /// Writes the plan into `main`; per table of `tables`.
    pub fn execute(&self, conn: &Connection) -> rusqlite::Result<Vec<Written>> {
        let mut out = self.assign_keys(conn)?;
        for &i in self.selected {
            let t = &self.tables[i];
            let target = t.in_schema("main");
            let insert = |how| {
                conn.execute(
                    &format!(
                        "INSERT INTO {target}({}) {}",
                        names(&t.all()),
                        self.select(i, how)
                    ),
                    [],
                )
            };
            out[i].recovered = insert(OWN_KEY)? as u64;
            if t.integer_key {
                out[i].remapped = insert(NEW_KEY)? as u64;
            }
            if t.keyed() && !t.columns.is_empty() {
                let on = t
                    .key
                    .iter()
                    .map(|k| format!("L.{0} IS U.{0}", quote(k)))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                out[i].overwritten = conn.execute(
                    &format!(
                        "UPDATE {target} AS L SET ({}) = ({}) FROM ({}) AS U WHERE {on}",
                        names(&t.columns),
                        list("U", &t.columns),
                        self.select(i, REPLACE)
                    ),
                    [],
                )? as u64;
            }
        }
        Ok(out)
    }

    /// The statements `execute` would run, one row each; per table the
    /// counts it would report.
    pub fn sql(&self, conn: &Connection, out: &mut Vec<String>) -> rusqlite::Result<Vec<Written>> {
        let mut written = self.assign_keys(conn)?;
        for &i in self.selected {
            let t = &self.tables[i];
            let w = &mut written[i];
            for (how, n) in [
                (OWN_KEY, &mut w.recovered),
                (NEW_KEY, &mut w.remapped),
                (REPLACE, &mut w.overwritten),
            ] {
                if how == NEW_KEY && !t.integer_key {
                    continue;
                }
                each_row(conn, &self.select(i, how), |v| {
                    *n += 1;
                    out.push(if how == REPLACE {
                        t.update_stmt(&v)
                    } else {
                        t.insert_stmt(&t.all(), &v)
                    });
                })?;
            }
        }
        Ok(written)
    }

    /// Fills the key maps; returns them, per table.
    fn assign_keys(&self, conn: &Connection) -> rusqlite::Result<Vec<Written>> {
        let mut out = vec![Written::default(); self.tables.len()];
        for &i in self.selected {
            let t = &self.tables[i];
            if !t.integer_key {
                continue;
            }
            let (key, ins, map) = (quote(&t.key[0]), temp("ins", i), temp("map", i));
            let max = |schema: &str| {
                format!(
                    "coalesce((SELECT max({key}) FROM {}), 0)",
                    t.in_schema(schema)
                )
            };
            let has_sequence = count(
                conn,
                "SELECT count(*) FROM main.sqlite_schema WHERE name = 'sqlite_sequence'",
            )? > 0;
            let sequence = if has_sequence {
                format!(
                    "coalesce((SELECT seq FROM main.sqlite_sequence WHERE name = '{}'), 0)",
                    t.name.replace('\'', "''")
                )
            } else {
                "0".into()
            };
            conn.execute_batch(&format!(
                "CREATE TABLE {map} AS SELECT {key} AS old,
                     max({}, {}, {sequence}) + row_number() OVER (ORDER BY {key}) AS new
                 FROM {ins} WHERE \"snap how\" = {NEW_KEY};
                 CREATE INDEX {} ON {}(old);",
                max("main"),
                max("snap"),
                temp("map old", i),
                quote(&format!("snap map {i}")),
            ))?;
            let mut stmt = conn.prepare(&format!("SELECT old, new FROM {map} ORDER BY old"))?;
            out[i].new_keys = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
        }
        Ok(out)
    }

    /// The planned rows of table `i` written `how`, as `t.all()` columns:
    /// under their new key, and with foreign keys to re-keyed rows re-pointed.
    fn select(&self, i: usize, how: i64) -> String {
        let t = &self.tables[i];
        let exprs: Vec<String> = t
            .all()
            .iter()
            .map(|col| {
                let name = quote(col);
                if how == NEW_KEY && t.key.first() == Some(col) {
                    return format!("M.new AS {name}");
                }
                match self.repointed(i, col) {
                    Some(map) => format!(
                        "coalesce((SELECT new FROM {map} WHERE old = I.{name}), I.{name}) AS {name}"
                    ),
                    None => format!("I.{name} AS {name}"),
                }
            })
            .collect();
        let join = if how == NEW_KEY {
            format!(
                " JOIN {} AS M ON M.old = I.{}",
                temp("map", i),
                quote(&t.key[0])
            )
        } else {
            String::new()
        };
        format!(
            "SELECT {} FROM {} AS I{join} WHERE I.\"snap how\" = {how}",
            exprs.join(", "),
            temp("ins", i)
        )
    }

    /// The key map that column `col` of table `i` follows: a one-column
    /// foreign key to the key of a table whose rows may take new keys.
    fn repointed(&self, i: usize, col: &str) -> Option<String> {
        self.fks
            .iter()
            .find(|f| {
                let p = &self.tables[f.parent];
                f.child == i
                    && f.cols.len() == 1
                    && f.cols[0] == col
                    && p.integer_key
                    && f.parent_cols == p.key
                    && self.selected.contains(&f.parent)
            })
            .map(|f| temp("map", f.parent))
    }
}
