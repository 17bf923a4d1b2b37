//! Consistent capture of a live SQLite database, through SQLite and never by
//! copying its bytes (a byte copy of a live database was corrupt in 8 of 8
//! measured trials).
//!
//! 1. Inside one read transaction, every page image is copied from the
//!    `sqlite_dbpage` table (or, when the SQLite build lacks it, by the backup
//!    API in a single `step(-1)`).
//! 2. The pages are cut into page-aligned units and stored while the copy
//!    goes on: a WAL database's pages stream through memory
//!    (`source::streamed`); otherwise they go through a private image file
//!    in the store's tmp directory, so the copy runs ahead and a
//!    rollback-mode writer is blocked for the copy only.
//! 3. The copied snapshot (never the live database as it is now) is checked
//!    with `quick_check` or `integrity_check`, and its tables are counted:
//!    on a second connection at the copy's WAL snapshot, or on the image.

pub use super::check::{check_image, open_image, run_check, summary, uri_path};
pub use super::copy::lock_byte_page;
use super::copy::{backup_pages, file_shape, raw_pages};
use super::imaged::{copy_store_check, store_check, with_image};
use super::pages;
use super::streamed::stream_store_check;
use crate::dedup::ChunkWriter;
use crate::error::{Error, Result};
use crate::format::tree::Database;
use crate::format::units::UnitList;
use crate::id::ChunkId;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct CaptureOptions {
    /// `PRAGMA wal_checkpoint(TRUNCATE)` first, skipped if busy.
    pub checkpoint: bool,
    /// Full `integrity_check` instead of `quick_check`.
    pub integrity_check: bool,
    /// Use the backup API even when `sqlite_dbpage` is available (the
    /// fallback path, exercised by the tests).
    pub backup_api: bool,
    /// Check a WAL database on the copying connection after the copy rather
    /// than on a second connection at its snapshot during it (the fallback
    /// when that connection cannot be opened, exercised by the tests).
    pub one_connection: bool,
    /// How long to wait for the read lock (default `BUSY_WAIT`).
    pub lock_wait: Option<Duration>,
    /// Capture the whole database even when a watcher's newest point could
    /// be followed through the log (by default a take of a watched
    /// database reads only what changed since that point).
    pub no_follow: bool,
    /// Skip the structural check of a database captured from a point (its
    /// cost, a read of every page, is reported apart: `check_ms`).
    pub no_check: bool,
}

/// How long a capture waits for its read lock, as any reader does: in
/// rollback mode a writer holds the database exclusively while it commits.
/// The wait starts before the first statement (even `PRAGMA journal_mode`
/// needs the lock), and a capture that still cannot read after it fails
/// with an error that says so.
pub(crate) const BUSY_WAIT: Duration = Duration::from_secs(60);
/// `--checkpoint` never waits longer than this: it is housekeeping.
const CHECKPOINT_WAIT: Duration = Duration::from_millis(200);

pub struct Image {
    /// The image; its `chunks` are the chunks of its unit list (a
    /// `NodeKind::ListedDatabase`).
    pub db: Database,
    pub bytes_read: u64,
    pub warnings: Vec<String>,
}

/// Is there a hot journal beside `db`: a non-empty `-journal` while no
/// process holds the database's RESERVED lock (SQLite's own test)? That is a
/// write that was interrupted, not one in progress.
pub(crate) fn hot_journal(db: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let mut name = db.as_os_str().to_os_string();
    name.push("-journal");
    if std::fs::metadata(&name).map_or(true, |m| m.len() == 0) {
        return false;
    }
    let Ok(f) = std::fs::File::open(db) else {
        return false;
    };
    // RESERVED is one byte after SQLite's PENDING byte at 0x40000000.
    let mut lock = libc::flock {
        l_type: libc::F_WRLCK as _,
        l_whence: libc::SEEK_SET as _,
        l_start: 0x4000_0001,
        l_len: 1,
        l_pid: 0,
    };
    // SAFETY: F_GETLK only fills in `lock`, a valid, exclusively borrowed struct.
    let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut lock) };
    r == 0 && lock.l_type == libc::F_UNLCK as libc::c_short
}

/// Is the `sqlite_dbpage` virtual table compiled into this SQLite?
pub(crate) fn has_dbpage(conn: &Connection) -> bool {
    conn.prepare("SELECT data FROM sqlite_dbpage WHERE pgno = 1")
        .is_ok()
}

/// Captures the database at `path`; `parent` is its image in the previous
/// snapshot, whose pages serve as delta bases for the pages that changed.
pub fn capture(
    path: &Path,
    opts: &CaptureOptions,
    writer: &mut ChunkWriter,
    parent: Option<(&Database, UnitList)>,
) -> Result<Image> {
    let (conn, journal_mode, mut warnings) = open_for_capture(path, opts)?;
    let how = Storing {
        parent,
        full: opts.integrity_check,
        // From the file's size (`stat`: no descriptor, see `copy::file_shape`).
        delta_level: pages::delta_level(std::fs::metadata(path).map_or(u64::MAX, |m| m.len())),
    };
    // The file's own shape is compared with its header only where no writer
    // can be changing both (see `copy::file_shape`): in rollback mode.
    let wal = journal_mode.eq_ignore_ascii_case("wal");
    let dbpage = has_dbpage(&conn) && !opts.backup_api;
    let captured = if dbpage && wal {
        stream_store_check(&conn, path, writer, &how, !opts.one_connection)
    } else {
        with_image(path, writer, |image, writer| {
            if dbpage {
                copy_store_check(&conn, path, wal, image, writer, &how)
            } else {
                let copy = writer.store().temp_file()?;
                backup_pages(&conn, path, copy, image.as_file_mut()).and_then(|(size, _)| {
                    let shape = if wal { Vec::new() } else { file_shape(path) };
                    store_check(image, size, shape, writer, &how)
                })
            }
        })
    };
    let captured = captured.or_else(|e| match e {
        // SQLite cannot read it at all: store the file's pages as they are,
        // and let the check mark the snapshot (exit 5), as for a bad page.
        Error::Sqlite { source, .. } if damaged(&source) => {
            with_image(path, writer, |image, writer| {
                let (size, _, mut d) = raw_pages(path, image.as_file_mut())?;
                d.insert(0, format!("SQLite could not read it ({source})"));
                d.extend(file_shape(path));
                store_check(image, size, d, writer, &how)
            })
        }
        Error::Sqlite { path, source } => Err(busy(&path, source)),
        other => Err(other),
    })?;
    drop(conn);
    let (db, bytes_read) = described(captured, &journal_mode, opts);
    warnings.extend(check_warnings(path, &db));
    Ok(Image {
        bytes_read,
        db,
        warnings,
    })
}

/// Opens `path` for a capture (read-write when allowed, so a checkpoint can
/// run; else read-only) with the lock wait of `opts`, and checkpoints a WAL
/// database first when asked. Returns the connection, the journal mode and
/// the warnings so far.
fn open_for_capture(
    path: &Path,
    opts: &CaptureOptions,
) -> Result<(Connection, String, Vec<String>)> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .or_else(|_| Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY))
    .map_err(Error::sqlite(path))?;
    LOCK_WAIT.set(opts.lock_wait.unwrap_or(BUSY_WAIT));
    conn.busy_handler(Some(wait_for_lock))
        .map_err(Error::sqlite(path))?;
    let mut warnings = Vec::new();
    let journal_mode: String = match conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)) {
        Ok(mode) => mode,
        Err(e) if damaged(&e) => "unknown".into(),
        Err(e) => return Err(busy(path, e)),
    };
    if opts.checkpoint && journal_mode.eq_ignore_ascii_case("wal") {
        conn.busy_timeout(CHECKPOINT_WAIT)
            .map_err(Error::sqlite(path))?;
        match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        }) {
            Ok(0) => {}
            _ => warnings.push(format!(
                "{}: checkpoint skipped (database busy)",
                path.display()
            )),
        }
    }
    conn.busy_handler(Some(wait_for_lock))
        .map_err(Error::sqlite(path))?;
    Ok((conn, journal_mode, warnings))
}

/// The database node of a capture, and the bytes its image holds.
fn described(captured: Captured, journal_mode: &str, opts: &CaptureOptions) -> (Database, u64) {
    let Captured {
        page_size,
        page_count,
        damage,
        chunks,
        check: (check, tables),
    } = captured;
    let mut db = Database {
        page_size,
        page_count,
        chunks,
        journal_mode: journal_mode.to_ascii_lowercase(),
        sqlite_version: rusqlite::version().to_string(),
        check,
        check_kind: if opts.integrity_check {
            "integrity_check"
        } else {
            "quick_check"
        }
        .into(),
        tables,
    };
    if !damage.is_empty() {
        db.check = format!("damaged file: {}; {}", damage.join("; "), db.check);
    }
    (db, page_count * page_size as u64)
}

/// The warning of a failed check: the whole answer is in the record (and
/// `take`'s report); the warning says what failed in one line.
pub(crate) fn check_warnings(path: &Path, db: &Database) -> Option<String> {
    if db.check == "ok" || db.check_kind == crate::format::record::UNCHECKED {
        return None;
    }
    let lines = db.check.lines().count();
    Some(format!(
        "{}: {} of the captured image failed: {}{}",
        path.display(),
        db.check_kind,
        db.check.lines().next().unwrap_or(""),
        if lines > 1 {
            format!(" (and {} more lines, in the snapshot's record)", lines - 1)
        } else {
            String::new()
        }
    ))
}

/// A captured image: its shape, its units and its check.
pub(super) struct Captured {
    pub(super) page_size: u32,
    pub(super) page_count: u64,
    pub(super) damage: Vec<String>,
    /// The chunks of the unit list (`format::units`).
    pub(super) chunks: Vec<ChunkId>,
    pub(super) check: (String, Vec<(String, u64)>),
}

/// How the image's units are stored and checked.
pub(super) struct Storing<'p> {
    /// The parent snapshot's image (its units are the delta bases).
    parent: Option<(&'p Database, UnitList<'p>)>,
    /// `integrity_check` rather than the structural `quick_check`.
    pub(super) full: bool,
    delta_level: i32,
}

impl Storing<'_> {
    pub(super) fn store(
        &self,
        r: &mut impl std::io::Read,
        size: u32,
        w: &mut ChunkWriter,
    ) -> Result<(Vec<ChunkId>, u64)> {
        pages::store(
            r,
            size,
            w,
            pages::bases(self.parent, size),
            self.delta_level,
        )
    }
}

thread_local! {
    /// The capture's lock wait, for the busy handler (a plain fn) on this thread.
    static LOCK_WAIT: std::cell::Cell<Duration> = const { std::cell::Cell::new(BUSY_WAIT) };
}

/// SQLite's busy handler for the capture: retry every millisecond (a writer
/// committing in a tight loop leaves the lock free only for moments) until
/// the lock wait has passed.
fn wait_for_lock(tries: i32) -> bool {
    std::thread::sleep(Duration::from_millis(1));
    (tries as u128) < LOCK_WAIT.get().as_millis()
}

/// Errors that mean the database file itself is damaged.
fn damaged(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt) | Some(rusqlite::ErrorCode::NotADatabase)
    )
}

/// "database is locked" after the whole wait says what was waited for.
fn busy(path: &Path, e: rusqlite::Error) -> Error {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) {
        return Error::Invalid(format!(
            "{}: waited {} s for a read lock, and another process kept its write lock on the database all that time (a writer committing without pause, or a transaction left open); nothing was recorded (--db-lock-wait sets the wait)",
            path.display(),
            LOCK_WAIT.get().as_secs()
        ));
    }
    Error::Sqlite {
        path: path.to_path_buf(),
        source: e,
    }
}
