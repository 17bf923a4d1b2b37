//! snap as a library from another crate: take a directory with a live
//! SQLite database, restore it elsewhere, verify every byte. Exits non-zero
//! on any difference.

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("snap-library-user-{}", std::process::id()));
    let result = run(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// `snap::Error` converts from `std::io::Error`, so `?` works on both.
fn read(path: &Path) -> snap::Result<Vec<u8>> {
    Ok(std::fs::read(path)?)
}

fn run(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    std::fs::write(data.join("notes.txt"), b"kept by snap")?;
    let db = rusqlite::Connection::open(data.join("app.db"))?;
    db.execute_batch(
        "PRAGMA journal_mode=wal; CREATE TABLE t(x);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
         INSERT INTO t SELECT randomblob(100) FROM n;",
    )?;
    let store = snap::Store::open_or_init(dir.join("store"))?;
    let taken = snap::take(
        &store,
        &snap::TakeOptions {
            paths: vec![data.clone()],
            ..Default::default()
        },
    )?;
    assert!(taken.ok(), "the database image checks: {:?}", taken.warnings);
    let out = dir.join("out");
    snap::restore(
        &store,
        &snap::RestoreOptions {
            snapshot: "latest".into(),
            to: Some(out.clone()),
            ..Default::default()
        },
    )?;
    assert_eq!(read(&out.join("data/notes.txt"))?, b"kept by snap");
    let restored = rusqlite::Connection::open(out.join("data/app.db"))?;
    let rows: i64 = restored.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?;
    assert_eq!(rows, 500);
    let report = snap::verify(
        &store,
        &snap::VerifyOptions {
            read_data: true,
            ..Default::default()
        },
    )?;
    assert!(report.ok(), "{:?}", report.problems);
    println!(
        "snap as a library from another crate: took, restored and verified {} snapshot(s)",
        report.snapshots
    );
    Ok(())
}
