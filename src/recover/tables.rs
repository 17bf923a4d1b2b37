//! Which tables a recovery touches: the ones named (each must be in the
//! snapshot; one the live database lost is recreated from the snapshot's
//! schema), or else every ordinary table both have except the migration
//! bookkeeping of the common frameworks, which a recovery must not roll
//! back (two `alembic_version` rows break every later migration).

use crate::diff::table::{ordinary, quote, schema};
use rusqlite::Connection;

/// Tables that record which migrations ran, by framework.
pub(crate) const MIGRATION_TABLES: &[&str] = &[
    "alembic_version",            // Alembic
    "django_migrations",          // Django
    "schema_migrations",          // Rails, Ecto, dbmate, golang-migrate
    "ar_internal_metadata",       // Rails
    "knex_migrations",            // Knex
    "knex_migrations_lock",       // Knex
    "flyway_schema_history",      // Flyway
    "_sqlx_migrations",           // sqlx
    "__diesel_schema_migrations", // diesel
    "SequelizeMeta",              // Sequelize
    "_prisma_migrations",         // Prisma
    "goose_db_version",           // goose
    "__EFMigrationsHistory",      // Entity Framework
    "__drizzle_migrations",       // Drizzle
    "migrations",                 // Laravel, TypeORM
    "mikro_orm_migrations",       // MikroORM
    "kysely_migration",           // Kysely
    "kysely_migration_lock",      // Kysely
    "phinxlog",                   // Phinx
    "seaql_migrations",           // SeaORM
    "refinery_schema_history",    // refinery
    "atlas_schema_revisions",     // Atlas
    "databasechangelog",          // Liquibase
    "databasechangeloglock",      // Liquibase
    "migratehistory",             // peewee
    "_litestream_seq",            // Litestream's own
    "_litestream_lock",           // Litestream's own
];

/// The tables a recovery works on.
#[derive(Debug, Default)]
pub(crate) struct Choice {
    /// Tables to recover, as the snapshot names them.
    pub names: Vec<String>,
    /// Of those, the ones to create first (the live database lost them).
    pub recreate: Vec<String>,
    /// Bookkeeping tables left alone.
    pub left_alone: Vec<String>,
    /// Tables the snapshot has and the live database lost, not named.
    pub only_in_snapshot: Vec<String>,
}

fn has(list: &[String], name: &str) -> Option<String> {
    list.iter().find(|t| t.eq_ignore_ascii_case(name)).cloned()
}

/// Chooses the tables for `named` (every shared table when empty).
pub(crate) fn choose(conn: &Connection, named: &[String]) -> crate::Result<Choice> {
    let sqlite = |e| crate::Error::Invalid(format!("reading the schemas: {e}"));
    let snap = ordinary(&schema(conn, "snap").map_err(sqlite)?);
    let live = ordinary(&schema(conn, "main").map_err(sqlite)?);
    let mut choice = Choice::default();
    if named.is_empty() {
        for t in &snap {
            if has(&live, t).is_none() {
                choice.only_in_snapshot.push(t.clone());
            } else if MIGRATION_TABLES.iter().any(|m| m.eq_ignore_ascii_case(t)) {
                choice.left_alone.push(t.clone());
            } else {
                choice.names.push(t.clone());
            }
        }
        return Ok(choice);
    }
    for name in named {
        let Some(t) = has(&snap, name) else {
            return Err(crate::Error::Invalid(format!(
                "table {name} is not in the snapshot's database (it has: {}); nothing was changed",
                snap.join(", ")
            )));
        };
        if has(&live, &t).is_none() {
            choice.recreate.push(t.clone());
        }
        if has(&choice.names, &t).is_none() {
            choice.names.push(t);
        }
    }
    Ok(choice)
}

/// Creates each table in `names` in `main` as the snapshot's schema has
/// it, with its indexes and triggers.
pub(crate) fn recreate(conn: &Connection, names: &[String]) -> rusqlite::Result<()> {
    for name in names {
        let objects = schema(conn, "snap")?;
        for kind in ["table", "index", "trigger"] {
            for (_, _, _, sql) in objects
                .iter()
                .filter(|o| o.0 == kind && o.2.eq_ignore_ascii_case(name) && !o.3.is_empty())
            {
                conn.execute_batch(sql)?;
            }
        }
        // The snapshot's schema creates it in `main` (the statements name no schema).
        debug_assert!(conn
            .prepare(&format!("SELECT 1 FROM main.{} LIMIT 0", quote(name)))
            .is_ok());
    }
    Ok(())
}
