//! The seed case: a recruiting app's database, and the migration that
//! cascade-deleted its candidates while the app kept writing.

use rusqlite::Connection;
use std::path::Path;

/// The seed case's database: 35 candidates, 108 evaluations, 160 messages.
pub fn recruit_db(path: &Path) {
    let c = Connection::open(path).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=wal;
         CREATE TABLE candidates(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, email TEXT);
         CREATE TABLE evaluations(id INTEGER PRIMARY KEY AUTOINCREMENT,
             candidate_id INTEGER NOT NULL REFERENCES candidates(id) ON DELETE CASCADE, score INTEGER, notes TEXT);
         CREATE TABLE messages(id INTEGER PRIMARY KEY AUTOINCREMENT,
             candidate_id INTEGER NOT NULL REFERENCES candidates(id) ON DELETE CASCADE, body TEXT);
         CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
         INSERT INTO settings VALUES ('theme', 'light'), ('lang', 'en');",
    )
    .unwrap();
    let tx = c.unchecked_transaction().unwrap();
    for i in 1..=35 {
        tx.execute(
            "INSERT INTO candidates(name, email) VALUES (?1, ?2)",
            (format!("cand {i}"), format!("c{i}@x.org")),
        )
        .unwrap();
    }
    for i in 0..108 {
        tx.execute(
            "INSERT INTO evaluations(candidate_id, score, notes) VALUES (?1, ?2, ?3)",
            (i % 35 + 1, i % 5, format!("notes {i}")),
        )
        .unwrap();
    }
    for i in 0..160 {
        tx.execute(
            "INSERT INTO messages(candidate_id, body) VALUES (?1, ?2)",
            (i % 35 + 1, format!("hello {i}")),
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

/// The bad migration: a cascade delete, then the app keeps writing 5 rows.
pub fn bad_migration_then_new_rows(db: &Path) {
    let c = Connection::open(db).unwrap();
    c.execute_batch(
        "PRAGMA foreign_keys=ON;
         DELETE FROM candidates;
         UPDATE settings SET value = 'dark' WHERE key = 'theme';
         INSERT INTO candidates(name, email) VALUES ('new 1', 'n1@x.org'), ('new 2', 'n2@x.org');
         INSERT INTO evaluations(candidate_id, score, notes) VALUES (36, 4, 'fresh'), (37, 3, 'fresh');
         INSERT INTO messages(candidate_id, body) VALUES (36, 'welcome');",
    )
    .unwrap();
}
