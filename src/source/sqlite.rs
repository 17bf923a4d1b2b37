//! Consistent capture of a live SQLite database, through SQLite and never by
//! copying its bytes (a byte copy of a live database was corrupt in 8 of 8
//! measured trials).
//!
//! 1. Inside one read transaction, every page image is copied from the
//!    `sqlite_dbpage` table (or, when the SQLite build lacks it, by the backup
//!    API in a single `step(-1)`) into a private image file in the store's
//!    tmp directory. The transaction is ended at once: a WAL-mode writer is
//!    never blocked, and a rollback-mode writer only for the copy.
//! 2. The image is cut into page-aligned chunks and stored.
//! 3. The image (not the live database) is checked with `quick_check` or
//!    `integrity_check`, and its tables are counted.

pub use super::check::{check_image, open_image, run_check, summary, uri_path};
pub use super::copy::lock_byte_page;
use super::copy::{backup_pages, copy_pages, file_shape, raw_pages};
use super::growing::Growing;
use super::pages;
use crate::error::{Error, Result};
use crate::format::tree::Database;
use crate::id::ChunkId;
use crate::store::ChunkWriter;
use rusqlite::{Connection, OpenFlags};
use std::io::Seek;
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
    /// How long to wait for the read lock (default `BUSY_WAIT`).
    pub lock_wait: Option<Duration>,
}

/// How long a capture waits for its read lock, as any reader does: in
/// rollback mode a writer holds the database exclusively while it commits.
/// The wait starts before the first statement (even `PRAGMA journal_mode`
/// needs the lock), and a capture that still cannot read after it fails
/// with an error that says so.
pub const BUSY_WAIT: Duration = Duration::from_secs(60);
/// `--checkpoint` never waits longer than this: it is housekeeping.
const CHECKPOINT_WAIT: Duration = Duration::from_millis(200);

pub struct Image {
    pub db: Database,
    pub bytes_read: u64,
    pub warnings: Vec<String>,
}

/// Is there a hot journal beside `db`: a non-empty `-journal` while no
/// process holds the database's RESERVED lock (SQLite's own test)? That is a
/// write that was interrupted, not one in progress.
pub fn hot_journal(db: &Path) -> bool {
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
pub fn has_dbpage(conn: &Connection) -> bool {
    conn.prepare("SELECT data FROM sqlite_dbpage WHERE pgno = 1")
        .is_ok()
}

/// Captures the database at `path`; `parent` is its image in the previous
/// snapshot, whose pages serve as delta bases for the pages that changed.
pub fn capture(
    path: &Path,
    opts: &CaptureOptions,
    writer: &mut ChunkWriter,
    parent: Option<&Database>,
) -> Result<Image> {
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
    let tmp = writer.store().tmp_dir();
    check_room(path, &tmp)?;
    let mut image = tempfile::Builder::new()
        .prefix(".image-")
        .tempfile_in(&tmp)
        .map_err(Error::io("create image file in", &tmp))?;
    let how = Storing {
        parent,
        full: opts.integrity_check,
        // From the file's size (`stat`: no descriptor, see `copy::file_shape`).
        delta_level: pages::delta_level(std::fs::metadata(path).map_or(u64::MAX, |m| m.len())),
    };
    // The file's own shape is compared with its header only where no writer
    // can be changing both (see `copy::file_shape`): in rollback mode.
    let wal = journal_mode.eq_ignore_ascii_case("wal");
    let captured = if has_dbpage(&conn) && !opts.backup_api {
        copy_store_check(&conn, path, wal, &mut image, writer, &how)
    } else {
        backup_pages(&conn, path, &tmp, image.as_file_mut()).and_then(|(size, _)| {
            let shape = if wal { Vec::new() } else { file_shape(path) };
            store_check(&mut image, size, shape, writer, &how)
        })
    };
    let captured = captured.or_else(|e| match e {
        // SQLite cannot read it at all: store the file's pages as they are,
        // and let the check mark the snapshot (exit 5), as for a bad page.
        Error::Sqlite { source, .. } if damaged(&source) => {
            // From the start: a failed copy may have written part of it.
            let f = image.as_file_mut();
            f.set_len(0)
                .and_then(|_| f.rewind())
                .map_err(Error::io("reset image of", path))?;
            let (size, _, mut d) = raw_pages(path, image.as_file_mut())?;
            d.insert(0, format!("SQLite could not read it ({source})"));
            d.extend(file_shape(path));
            store_check(&mut image, size, d, writer, &how)
        }
        Error::Sqlite { path, source } => Err(busy(&path, source)),
        other => Err(other),
    })?;
    drop(conn);
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
    if db.check != "ok" {
        warnings.push(format!(
            "{}: {} of the captured image failed: {}",
            path.display(),
            db.check_kind,
            db.check
        ));
    }
    Ok(Image {
        bytes_read: page_count * page_size as u64,
        db,
        warnings,
    })
}

/// A captured image: its shape, its units and its check.
struct Captured {
    page_size: u32,
    page_count: u64,
    damage: Vec<String>,
    chunks: Vec<ChunkId>,
    check: (String, Vec<(String, u64)>),
}

/// How the image's units are stored and checked.
struct Storing<'p> {
    /// The parent snapshot's image (its units are the delta bases).
    parent: Option<&'p Database>,
    /// `integrity_check` rather than the structural `quick_check`.
    full: bool,
    delta_level: i32,
}

impl Storing<'_> {
    fn store(
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

/// Copies the pages into `image` while another thread stores the units
/// already copied; once the copy is done, checks the image here while the
/// storing finishes. The store's result is used only if the copy succeeded
/// and the store read exactly the pages the copy wrote; otherwise (never
/// seen) the finished image is stored again from the file.
fn copy_store_check(
    conn: &Connection,
    path: &Path,
    wal: bool,
    image: &mut tempfile::NamedTempFile,
    writer: &mut ChunkWriter,
    how: &Storing,
) -> Result<Captured> {
    let growing = Growing::default();
    let shared = &*image;
    let (copied, stored, check) = std::thread::scope(|s| {
        let stored = s.spawn(|| {
            let size = growing
                .page_size()
                .ok_or_else(|| Error::Invalid("no pages".into()))?;
            let mut reader =
                std::io::BufReader::with_capacity(1 << 20, growing.reader(shared.as_file()));
            how.store(&mut reader, size, writer)
        });
        // Even a copy that panics must end the reader's wait.
        let end = growing.end_on_drop();
        let copied = copy_pages(conn, path, wal, &mut growing.writer(shared.as_file()));
        growing.finish(copied.is_ok());
        drop(end);
        let check = copied.is_ok().then(|| check_image(shared.path(), how.full));
        (copied, stored.join(), check)
    });
    let (page_size, page_count, damage) = copied?;
    let (chunks, stored_pages) =
        stored.map_err(|_| Error::Invalid("storing the image panicked".into()))??;
    if stored_pages != page_count {
        return store_check(image, page_size, damage, writer, how);
    }
    let check = check
        .expect("the copy succeeded")
        .map_err(Error::sqlite(path))?;
    Ok(Captured {
        page_size,
        page_count,
        damage,
        chunks,
        check,
    })
}

/// Stores a finished image while its check runs on another thread (both
/// only read it).
fn store_check(
    image: &mut tempfile::NamedTempFile,
    page_size: u32,
    damage: Vec<String>,
    writer: &mut ChunkWriter,
    how: &Storing,
) -> Result<Captured> {
    let image_path = image.path().to_path_buf();
    let (stored, checked) = std::thread::scope(|s| {
        let check = s.spawn(|| check_image(&image_path, how.full));
        let file = image.as_file_mut();
        let stored = file
            .rewind()
            .map_err(Error::io("read image", "tmp"))
            .and_then(|_| {
                let mut reader = std::io::BufReader::with_capacity(1 << 20, &*file);
                how.store(&mut reader, page_size, writer)
            });
        (stored, check.join())
    });
    let (chunks, page_count) = stored?;
    let check = checked
        .map_err(|_| Error::Invalid("the check of the image panicked".into()))?
        .map_err(Error::sqlite(&image_path))?;
    Ok(Captured {
        page_size,
        page_count,
        damage,
        chunks,
        check,
    })
}

/// The image is a private copy in the store's `tmp/`: refuse up front when
/// it cannot fit (the database and its WAL bound its size), rather than fill
/// the disk.
fn check_room(db: &Path, tmp: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let mut wal = db.as_os_str().to_os_string();
    wal.push("-wal");
    let need = [db.as_os_str(), wal.as_os_str()]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum::<u64>();
    let Ok(c) = std::ffi::CString::new(tmp.as_os_str().as_bytes()) else {
        return Ok(());
    };
    // SAFETY: statvfs fills `st`, a valid, exclusively borrowed struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Ok(());
    }
    let free = st.f_bavail as u64 * st.f_frsize as u64;
    if need > free {
        return Err(Error::Invalid(format!(
            "{}: its image needs up to {need} bytes in {} and only {free} are free; nothing was recorded",
            db.display(),
            tmp.display()
        )));
    }
    Ok(())
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
