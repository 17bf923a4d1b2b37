//! Capture of a WAL-mode database with no image file (DESIGN.md, "SQLite
//! capture"): the pages stream from `sqlite_dbpage` through memory to the
//! storing thread, and the check runs at the same time on a second
//! connection opened at the copy's WAL snapshot (`sqlite3_snapshot_get` and
//! `sqlite3_snapshot_open`). Nothing is written but the store's own packs.
//!
//! Invariant: the copy, the check and the table counts all read the one
//! snapshot the copy's read transaction started; the transaction stays open
//! until all three are done.

use super::check::check_conn;
use super::copy::{copy_rows, in_read_txn, read_shape};
use super::pipe::{pipe, PipeWriter};
use super::sqlite::{Captured, Storing};
use crate::dedup::ChunkWriter;
use crate::error::{Error, Result};
use rusqlite::{ffi, Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// Copies, stores and checks `conn`'s database (WAL mode) in one read
/// transaction; the check runs on a second connection at the same snapshot
/// when `second` is asked for and it can be opened.
pub(super) fn stream_store_check(
    conn: &Connection,
    path: &Path,
    writer: &mut ChunkWriter,
    how: &Storing,
    second: bool,
) -> Result<Captured> {
    in_read_txn(conn, path, || {
        let shape = read_shape(conn, path)?;
        // Without a second connection the check runs on `conn` after the
        // copy, still inside the same transaction.
        let second = second.then(|| open_at_snapshot(conn, path).ok()).flatten();
        let (tx, mut rx) = pipe();
        let (copied, stored, check) = std::thread::scope(|s| {
            let stored = s.spawn(move || {
                let size = rx
                    .page_size()
                    .ok_or_else(|| Error::Invalid("no pages".into()))?;
                how.store(&mut rx, size, writer)
            });
            let check = second.map(|c| s.spawn(move || check_conn(&c, how.full)));
            let copied = copy_into(conn, path, shape, tx);
            let check = copied.is_ok().then(|| match check {
                Some(h) => h.join(),
                None => Ok(check_conn(conn, how.full)),
            });
            (copied, stored.join(), check)
        });
        let stored = stored.map_err(|_| Error::Internal("storing the pages panicked".into()))?;
        let ((page_size, page_count, damage), (chunks, stored_pages)) = match (copied, stored) {
            (Ok(c), Ok(s)) => (c, s),
            // The copy failed writing to the pipe because the storing stopped:
            // the storing's error is the cause.
            (Err(Error::Io { .. }), Err(e)) => return Err(e),
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
        if stored_pages != page_count {
            return Err(Error::Invalid(format!(
                "{}: {page_count} pages were copied and {stored_pages} stored; nothing was recorded",
                path.display()
            )));
        }
        let check = check
            .expect("the copy succeeded")
            .map_err(|_| Error::Internal("the check panicked".into()))?
            .map_err(Error::sqlite(path))?;
        Ok(Captured {
            page_size,
            page_count,
            damage,
            chunks,
            check,
        })
    })
}

/// Copies the pages into the pipe and ends it: finished after the last page,
/// or dropped on any error (the storing thread then sees an error, never an
/// early end, and never waits for pages that will not come).
fn copy_into(
    conn: &Connection,
    path: &Path,
    shape: (u32, u64),
    mut tx: PipeWriter,
) -> Result<(u32, u64, Vec<String>)> {
    let copied = copy_rows(conn, path, true, shape, &mut tx)?;
    tx.finish().map_err(Error::io("stream pages of", path))?;
    Ok(copied)
}

/// A second, read-only connection to `path` in a read transaction at
/// `conn`'s snapshot (`conn` must be inside a WAL-mode read transaction).
/// Needs a SQLite built with `SQLITE_ENABLE_SNAPSHOT` (`.cargo/config.toml`).
fn open_at_snapshot(conn: &Connection, path: &Path) -> rusqlite::Result<Connection> {
    let second = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    second.busy_timeout(Duration::from_secs(5))?;
    // A first read opens the WAL index, which `sqlite3_snapshot_open` needs.
    second.query_row("PRAGMA schema_version", [], |_| Ok(()))?;
    second.execute_batch("BEGIN")?;
    let fail = |why: &str| {
        Err(rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_ERROR),
            Some(format!(
                "no second connection at the copy's snapshot: {why}"
            )),
        ))
    };
    if !snapshots_available() {
        return fail("this SQLite was built without SQLITE_ENABLE_SNAPSHOT");
    }
    match snapshot(conn) {
        Some(snap) => {
            // SAFETY: the handle is valid while `second` lives, `snap` until dropped.
            let rc = unsafe { snap_snapshot_open(second.handle(), MAIN.as_ptr(), snap.0) };
            if rc != ffi::SQLITE_OK {
                return fail("sqlite3_snapshot_open failed");
            }
        }
        // No frame has been written to the WAL since its index was created,
        // so `conn` reads the database file alone, and no checkpoint can
        // change that file while it reads (it holds read lock 0). The second
        // connection's transaction, started now, reads the same file if its
        // WAL has no frame either, which is when it has no snapshot.
        None => {
            second.query_row("PRAGMA schema_version", [], |_| Ok(()))?;
            if snapshot(&second).is_some() {
                return fail("a writer committed between the two reads");
            }
        }
    }
    Ok(second)
}

const MAIN: &std::ffi::CStr = c"main";

// src/source/snapshot.c: SQLite's snapshot functions through weak
// references, so that snap links against a SQLite built without them.
extern "C" {
    fn snap_snapshot_available() -> std::ffi::c_int;
    fn snap_snapshot_get(
        db: *mut ffi::sqlite3,
        schema: *const std::ffi::c_char,
        out: *mut *mut ffi::sqlite3_snapshot,
    ) -> std::ffi::c_int;
    fn snap_snapshot_open(
        db: *mut ffi::sqlite3,
        schema: *const std::ffi::c_char,
        snap: *mut ffi::sqlite3_snapshot,
    ) -> std::ffi::c_int;
    fn snap_snapshot_free(snap: *mut ffi::sqlite3_snapshot);
}

/// Whether this SQLite has the snapshot functions (`SQLITE_ENABLE_SNAPSHOT`).
pub(crate) fn snapshots_available() -> bool {
    // SAFETY: reads the addresses of three weak symbols.
    unsafe { snap_snapshot_available() != 0 }
}

/// A WAL snapshot, freed when dropped.
struct Snapshot(*mut ffi::sqlite3_snapshot);

impl Drop for Snapshot {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from a successful `sqlite3_snapshot_get`, freed once.
        unsafe { snap_snapshot_free(self.0) }
    }
}

/// The snapshot `conn`'s read transaction is at (starting one if needed);
/// `None` when SQLite has none to give: no frame was ever written to the
/// WAL since its index was created (SQLite's rule), or `conn` is not in a
/// transaction on a WAL database.
fn snapshot(conn: &Connection) -> Option<Snapshot> {
    if !snapshots_available() {
        return None;
    }
    let mut snap = std::ptr::null_mut();
    // SAFETY: the handle is valid while `conn` lives; `snap` is written only on success.
    let rc = unsafe { snap_snapshot_get(conn.handle(), MAIN.as_ptr(), &mut snap) };
    (rc == ffi::SQLITE_OK).then_some(Snapshot(snap))
}

/// Where `conn`'s read transaction (on a WAL database, started) stands in
/// the log; None when SQLite gives no snapshot (no frame since the WAL
/// index was created: the database file alone is read) or lacks the
/// snapshot functions. See `wal::Position` for how far it is trusted.
pub(crate) fn wal_position(conn: &Connection) -> Option<super::wal::Position> {
    let snap = snapshot(conn)?;
    // SAFETY: a `sqlite3_snapshot` is 48 bytes (sqlite3.h: `unsigned char
    // hidden[48]`), valid until `snap` is dropped.
    let bytes = unsafe { &*(snap.0 as *const [u8; 48]) };
    Some(super::wal::position(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(c: &Connection) -> i64 {
        c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    /// A WAL database with `frames` rows committed after the WAL was created
    /// (0: none, so its WAL has no frame), and a reader inside a read
    /// transaction that has seen its rows.
    fn reader_of(dir: &Path, frames: i64) -> (std::path::PathBuf, Connection) {
        let path = dir.join("t.db");
        let c = Connection::open(&path).unwrap();
        c.execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .unwrap();
        drop(c); // the last connection checkpoints and deletes the WAL
        let writer = Connection::open(&path).unwrap();
        for _ in 0..frames {
            writer.execute("INSERT INTO t VALUES (2)", []).unwrap();
        }
        let reader = Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        assert_eq!(rows(&reader), 1 + frames);
        // Keep the WAL as it is: the writer stays open.
        std::mem::forget(writer);
        (path, reader)
    }

    fn commit_one(path: &Path) {
        Connection::open(path)
            .unwrap()
            .execute("INSERT INTO t VALUES (3)", [])
            .unwrap();
    }

    // This project's build has SQLite's snapshot functions (its
    // .cargo/config.toml asks for them): without them the capture would
    // take the slower path without a word.
    #[test]
    fn this_build_has_the_snapshot_functions() {
        assert!(snapshots_available());
    }

    #[test]
    fn a_copy_that_fails_midway_is_an_error_to_the_storing_side() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let c = Connection::open(&path).unwrap();
        c.execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t(x);")
            .unwrap();
        // 12 MB: more than the pipe holds, so the copy is still running
        // when the storing side interrupts it.
        c.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
             INSERT INTO t SELECT randomblob(4000) FROM n",
            [],
        )
        .unwrap();
        let interrupt = c.get_interrupt_handle();
        let (tx, mut rx) = pipe();
        let (copied, read) = std::thread::scope(|s| {
            let reader = s.spawn(move || {
                assert_eq!(rx.page_size(), Some(4096));
                let mut block = vec![0; 1 << 20];
                rx.read_exact(&mut block).unwrap();
                interrupt.interrupt();
                rx.read_to_end(&mut Vec::new())
            });
            let copied = in_read_txn(&c, &path, || {
                let shape = read_shape(&c, &path)?;
                copy_into(&c, &path, shape, tx)
            });
            (copied, reader.join().unwrap())
        });
        assert!(copied.is_err());
        // An error, not an early end the storing side would take for the
        // whole database (nor a wait that never ends).
        assert!(read.is_err());
    }

    #[test]
    fn the_second_connection_reads_the_first_ones_snapshot() {
        for frames in [0, 2] {
            let dir = tempfile::tempdir().unwrap();
            let (path, reader) = reader_of(dir.path(), frames);
            // No commit in between: both read the same rows.
            let second = open_at_snapshot(&reader, &path).unwrap();
            assert_eq!(rows(&second), rows(&reader));
        }
    }

    #[test]
    fn a_commit_between_the_two_reads_is_never_mixed_in() {
        // The WAL had frames: the second connection opens at the snapshot,
        // before the commit.
        let dir = tempfile::tempdir().unwrap();
        let (path, reader) = reader_of(dir.path(), 2);
        commit_one(&path);
        let second = open_at_snapshot(&reader, &path).unwrap();
        assert_eq!(rows(&second), 3);
        assert_eq!(rows(&reader), 3);
        // The WAL had no frame: there is no snapshot to open, and the second
        // connection would see the commit, so it is refused (the check then
        // runs on the first connection).
        let dir = tempfile::tempdir().unwrap();
        let (path, reader) = reader_of(dir.path(), 0);
        commit_one(&path);
        assert!(open_at_snapshot(&reader, &path).is_err());
        assert_eq!(rows(&reader), 1);
    }
}
