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

use crate::error::{Error, Result};
use crate::format::record::DatabaseSummary;
use crate::format::tree::Database;
use crate::store::ChunkWriter;
use rusqlite::{Connection, OpenFlags};
use std::io::{Read, Seek, Write};
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

/// Pages per chunk. One page: see DESIGN.md, "Parameters" (bytes stored per
/// day by run length).
pub const PAGES_PER_CHUNK: u64 = 1;
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

/// Page number of the lock-byte page, which SQLite never uses: stored as zeros.
pub fn lock_byte_page(page_size: u32) -> u64 {
    (1u64 << 30) / page_size as u64 + 1
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
    let shape = file_shape(path);
    let (page_size, page_count, mut damage) = if has_dbpage(&conn) && !opts.backup_api {
        copy_pages(&conn, path, image.as_file_mut())
    } else {
        backup_pages(&conn, path, &tmp, image.as_file_mut()).map(|(s, n)| (s, n, Vec::new()))
    }
    .or_else(|e| match e {
        // SQLite cannot read it at all: store the file's pages as they are,
        // and let the check mark the snapshot (exit 5), as for a bad page.
        Error::Sqlite { source, .. } if damaged(&source) => raw_pages(path, image.as_file_mut())
            .map(|(s, n, mut d)| {
                d.insert(0, format!("SQLite could not read it ({source})"));
                (s, n, d)
            }),
        Error::Sqlite { path, source } => Err(busy(&path, source)),
        other => Err(other),
    })?;
    drop(conn);
    damage.extend(shape);
    let bases = parent
        .filter(|p| p.page_size == page_size && PAGES_PER_CHUNK == 1)
        .map(|p| p.chunks.as_slice())
        .unwrap_or(&[]);
    let chunks = store_pages(image.as_file_mut(), page_size, page_count, writer, bases)?;
    let mut db = Database {
        page_size,
        page_count,
        chunks,
        journal_mode: journal_mode.to_ascii_lowercase(),
        sqlite_version: rusqlite::version().to_string(),
        check: String::new(),
        check_kind: if opts.integrity_check {
            "integrity_check"
        } else {
            "quick_check"
        }
        .into(),
        tables: Vec::new(),
    };
    check_image(image.path(), opts.integrity_check, &mut db).map_err(Error::sqlite(path))?;
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

/// Damage visible in the file's own shape, whatever SQLite makes of it: a
/// size that is not a whole number of pages, or a file shorter than its
/// header says (a truncated copy).
fn file_shape(path: &Path) -> Vec<String> {
    let (Ok(mut f), Ok(meta)) = (std::fs::File::open(path), std::fs::metadata(path)) else {
        return Vec::new();
    };
    let mut h = [0u8; 100];
    if f.read_exact(&mut h).is_err() {
        return vec!["the file is shorter than its 100-byte header".into()];
    }
    let page_size = match u16::from_be_bytes([h[16], h[17]]) {
        1 => 65536u64,
        n => n as u64,
    };
    let len = meta.len();
    let mut out = Vec::new();
    if page_size >= 512 && len % page_size != 0 {
        out.push(format!(
            "its {len} bytes are not a whole number of {page_size}-byte pages"
        ));
    }
    let pages = u32::from_be_bytes([h[28], h[29], h[30], h[31]]) as u64;
    // The in-header size is valid when "version-valid-for" equals the change counter.
    if h[92..96] == h[24..28] && pages > 0 && len < pages * page_size {
        out.push(format!(
            "the file holds {len} bytes and its header says {} (truncated)",
            pages * page_size
        ));
    }
    out
}

/// Errors that mean the database file itself is damaged.
fn damaged(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt) | Some(rusqlite::ErrorCode::NotADatabase)
    )
}

/// The pages of a file SQLite cannot read, copied byte for byte (the last
/// one padded with zeros). Returns (page size, count, damage).
fn raw_pages(path: &Path, out: &mut std::fs::File) -> Result<(u32, u64, Vec<String>)> {
    let mut file = std::fs::File::open(path).map_err(Error::io("open", path))?;
    let mut head = [0u8; 18];
    file.read_exact(&mut head)
        .map_err(Error::io("read", path))?;
    let page_size = match u16::from_be_bytes([head[16], head[17]]) {
        1 => 65536,
        n if n >= 512 && n.is_power_of_two() => n as u32,
        _ => 4096,
    };
    file.rewind().map_err(Error::io("read", path))?;
    let n = std::io::copy(&mut file, out).map_err(Error::io("copy", path))?;
    let pages = n.div_ceil(page_size as u64);
    out.set_len(pages * page_size as u64)
        .map_err(Error::io("write image of", path))?;
    let mut damage = Vec::new();
    if n % page_size as u64 != 0 {
        damage.push(format!(
            "{n} bytes is not a whole number of {page_size}-byte pages"
        ));
    }
    Ok((page_size, pages, damage))
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

/// Copies every page inside one read transaction. Returns (page size, count,
/// damage). A damaged file (truncated mid-page, pages missing) is copied as
/// far as it reads, the gaps as zero pages, and the damage is returned: the
/// snapshot is recorded with a failed check, like a corrupt page (exit 5).
fn copy_pages(
    conn: &Connection,
    path: &Path,
    out: &mut std::fs::File,
) -> Result<(u32, u64, Vec<String>)> {
    let sql = Error::sqlite(path);
    conn.execute_batch("BEGIN").map_err(Error::sqlite(path))?;
    let result = (|| {
        // The first read starts the transaction's snapshot; both pragmas and
        // every page below come from that one snapshot.
        let q = |pragma: &str| {
            conn.query_row(pragma, [], |r| r.get::<_, i64>(0))
                .map_err(Error::sqlite(path))
        };
        let page_size = q("PRAGMA page_size")? as u32;
        let page_count = q("PRAGMA page_count")? as u64;
        let lock_page = lock_byte_page(page_size);
        let zeros = vec![0u8; page_size as usize];
        let mut stmt = conn
            .prepare("SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno")
            .map_err(Error::sqlite(path))?;
        let mut rows = stmt.query([]).map_err(Error::sqlite(path))?;
        let mut n = 0u64;
        let mut damage = Vec::new();
        let mut buf = std::io::BufWriter::with_capacity(1 << 20, &mut *out);
        let mut put = |page: &[u8]| {
            buf.write_all(page)
                .map_err(Error::io("write image of", path))
        };
        while let Some(row) = rows.next().map_err(Error::sqlite(path))? {
            let pgno = row.get::<_, i64>(0).map_err(Error::sqlite(path))? as u64;
            let data = row
                .get_ref(1)
                .and_then(|v| Ok(v.as_blob()?))
                .map_err(Error::sqlite(path))?;
            while n + 1 < pgno {
                n += 1;
                put(&zeros)?;
            }
            n += 1;
            if data.len() != page_size as usize {
                damage.push(format!(
                    "page {pgno} is {} bytes, not {page_size}",
                    data.len()
                ));
                let mut page = data[..data.len().min(zeros.len())].to_vec();
                page.resize(zeros.len(), 0);
                put(&page)?;
            } else {
                put(if pgno == lock_page { &zeros[..] } else { data })?;
            }
        }
        if n < page_count {
            damage.push(format!(
                "the file holds {n} of its {page_count} pages (truncated)"
            ));
        }
        while n < page_count {
            n += 1;
            put(&zeros)?;
        }
        buf.flush().map_err(Error::io("write image of", path))?;
        Ok((page_size, n, damage))
    })();
    conn.execute_batch("COMMIT").map_err(sql)?;
    result
}

/// Fallback without `sqlite_dbpage`: the backup API in one `step(-1)` (never
/// small steps, which restart forever under writes), into a private file.
fn backup_pages(
    conn: &Connection,
    path: &Path,
    tmp: &Path,
    out: &mut std::fs::File,
) -> Result<(u32, u64)> {
    let copy =
        tempfile::NamedTempFile::new_in(tmp).map_err(Error::io("create image file in", tmp))?;
    let mut dst = Connection::open(copy.path()).map_err(Error::sqlite(path))?;
    {
        let backup = rusqlite::backup::Backup::new(conn, &mut dst).map_err(Error::sqlite(path))?;
        backup.step(-1).map_err(Error::sqlite(path))?;
    }
    let page_size: u32 = dst
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(Error::sqlite(path))?;
    let page_count = dst
        .query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))
        .map_err(Error::sqlite(path))? as u64;
    drop(dst);
    let mut f = std::fs::File::open(copy.path()).map_err(Error::io("open", copy.path()))?;
    std::io::copy(&mut f, out).map_err(Error::io("copy image", copy.path()))?;
    Ok((page_size, page_count))
}

fn store_pages(
    image: &mut std::fs::File,
    page_size: u32,
    page_count: u64,
    writer: &mut ChunkWriter,
    bases: &[crate::id::ChunkId],
) -> Result<Vec<crate::id::ChunkId>> {
    image.rewind().map_err(Error::io("read image", "tmp"))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, &*image);
    let mut chunks = Vec::with_capacity(page_count.div_ceil(PAGES_PER_CHUNK) as usize);
    let mut left = page_count;
    while left > 0 {
        let pages = left.min(PAGES_PER_CHUNK);
        let mut data = vec![0u8; (pages * page_size as u64) as usize];
        reader
            .read_exact(&mut data)
            .map_err(Error::io("read image", "tmp"))?;
        let base = bases.get(chunks.len()).copied();
        chunks.push(writer.put_with_base(data, base)?);
        left -= pages;
    }
    Ok(chunks)
}

/// Opens an image file read-only and immutable (no -wal or -shm is created).
pub fn open_image(path: &Path) -> rusqlite::Result<Connection> {
    let uri = format!("file:{}?immutable=1", uri_path(path));
    Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

/// A path as the path part of a SQLite URI: `%`, `#`, `?` and every byte
/// outside plain ASCII are percent-encoded (a `#` or `?` would otherwise end
/// the path).
pub fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs the check on an image and fills in `check` and `tables`.
pub fn check_image(path: &Path, full: bool, db: &mut Database) -> rusqlite::Result<()> {
    let conn = open_image(path)?;
    db.check = run_check(
        &conn,
        if full {
            "integrity_check"
        } else {
            "quick_check"
        },
    )?;
    if db.check == "ok" {
        let names: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for name in names {
            let sql = format!("SELECT count(*) FROM \"{}\"", name.replace('"', "\"\""));
            let n: i64 = conn.query_row(&sql, [], |r| r.get(0))?;
            db.tables.push((name, n as u64));
        }
    }
    Ok(())
}

/// `PRAGMA quick_check` / `integrity_check` / `foreign_key_check`: "ok" or the
/// first problems found.
pub fn run_check(conn: &Connection, pragma: &str) -> rusqlite::Result<String> {
    let result = (|| {
        let mut stmt = conn.prepare(&format!("PRAGMA {pragma}"))?;
        let mut lines = Vec::new();
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let line: Vec<String> = (0..row.as_ref().column_count())
                .map(|i| row.get_ref(i).map(|v| format!("{v:?}")).unwrap_or_default())
                .collect();
            lines.push(if pragma == "foreign_key_check" {
                line.join(" ")
            } else {
                row.get::<_, String>(0)?
            });
            if lines.len() >= 5 {
                break;
            }
        }
        Ok::<_, rusqlite::Error>(lines)
    })();
    match result {
        Ok(lines) if lines.is_empty() && pragma == "foreign_key_check" => Ok("ok".into()),
        Ok(lines) => Ok(lines.join("; ")),
        // A file too damaged to run the check on is a failed check, not an error.
        Err(e) => Ok(format!("check could not run: {e}")),
    }
}

pub fn summary(path: String, db: &Database) -> DatabaseSummary {
    DatabaseSummary {
        path,
        page_size: db.page_size,
        page_count: db.page_count,
        journal_mode: db.journal_mode.clone(),
        sqlite_version: db.sqlite_version.clone(),
        check: db.check.clone(),
        check_kind: db.check_kind.clone(),
        tables: db.tables.clone(),
    }
}
