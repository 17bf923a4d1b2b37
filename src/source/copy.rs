//! Copying a database's pages into a private image file: through
//! `sqlite_dbpage` in one read transaction (or the backup API), or, for a
//! file SQLite cannot read, byte for byte. Nothing here stores anything.

use super::growing::GrowingWriter;
use super::pipe::PipeWriter;
use crate::error::{Error, Result};
use rusqlite::Connection;
use std::io::{Read, Seek, Write};
use std::path::Path;

/// Page number of the lock-byte page, which SQLite never uses: stored as zeros.
pub fn lock_byte_page(page_size: u32) -> u64 {
    (1u64 << 30) / page_size as u64 + 1
}

/// Damage visible in the file's own shape, whatever SQLite makes of it: a
/// size that is not a whole number of pages, or a file shorter than its
/// header says (a truncated copy). Only meaningful while no writer changes
/// the file: a checkpoint (WAL mode) or a commit (rollback mode) writes page
/// 1 with the new size before the pages that extend the file, so a live
/// database read in between looks truncated. Never called for a WAL-mode
/// database SQLite can read; in rollback mode only inside the read
/// transaction.
///
/// Opening the file here would be wrong while SQLite holds a lock on it:
/// closing any descriptor of a file drops every POSIX lock the process holds
/// on it, SQLite's read lock included. So this opens it only when no
/// connection is reading; inside a transaction, `shape` takes page 1 as read
/// through SQLite and the length from `stat`.
pub(super) fn file_shape(path: &Path) -> Vec<String> {
    let (Ok(mut f), Ok(meta)) = (std::fs::File::open(path), std::fs::metadata(path)) else {
        return Vec::new();
    };
    let mut h = [0u8; 100];
    if f.read_exact(&mut h).is_err() {
        return vec!["the file is shorter than its 100-byte header".into()];
    }
    shape(&h, meta.len())
}

/// `file_shape` from the file's first 100 bytes and its length.
fn shape(h: &[u8], len: u64) -> Vec<String> {
    if h.len() < 100 {
        return vec!["the file is shorter than its 100-byte header".into()];
    }
    let page_size = match u16::from_be_bytes([h[16], h[17]]) {
        1 => 65536u64,
        n => n as u64,
    };
    let mut out = Vec::new();
    if page_size >= 512 && !len.is_multiple_of(page_size) {
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

/// The pages of a file SQLite cannot read, copied byte for byte (the last
/// one padded with zeros). Returns (page size, count, damage).
pub(super) fn raw_pages(path: &Path, out: &mut std::fs::File) -> Result<(u32, u64, Vec<String>)> {
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

/// Where `copy_rows` puts the pages: the image file as it grows, or the
/// pipe to the storing thread.
pub(super) trait PageSink: Write {
    /// Called once, before the first page.
    fn set_page_size(&mut self, size: u32) -> std::io::Result<()>;
}

impl PageSink for std::io::BufWriter<GrowingWriter<'_>> {
    fn set_page_size(&mut self, size: u32) -> std::io::Result<()> {
        self.get_ref().set_page_size(size);
        Ok(())
    }
}

impl PageSink for PipeWriter {
    fn set_page_size(&mut self, size: u32) -> std::io::Result<()> {
        PipeWriter::set_page_size(self, size)
    }
}

/// Runs `f` inside one read transaction on `conn`, which ends (`COMMIT`)
/// whatever `f` returns.
pub(super) fn in_read_txn<T>(
    conn: &Connection,
    path: &Path,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    conn.execute_batch("BEGIN").map_err(Error::sqlite(path))?;
    let result = f();
    conn.execute_batch("COMMIT").map_err(Error::sqlite(path))?;
    result
}

/// The database's (page size, page count). Inside a transaction the first
/// read starts its snapshot: these and every page read after them come from
/// that one snapshot.
pub(super) fn read_shape(conn: &Connection, path: &Path) -> Result<(u32, u64)> {
    let q = |pragma: &str| {
        conn.query_row(pragma, [], |r| r.get::<_, i64>(0))
            .map_err(Error::sqlite(path))
    };
    Ok((
        q("PRAGMA page_size")? as u32,
        q("PRAGMA page_count")? as u64,
    ))
}

/// Copies every page inside one read transaction into the image file.
/// Returns (page size, count, damage); see `copy_rows`.
pub(super) fn copy_pages(
    conn: &Connection,
    path: &Path,
    wal: bool,
    out: GrowingWriter,
) -> Result<(u32, u64, Vec<String>)> {
    in_read_txn(conn, path, || {
        let shape = read_shape(conn, path)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
        copy_rows(conn, path, wal, shape, &mut out)
    })
}

/// Copies every page of `sqlite_dbpage` into `out`, inside the read
/// transaction `read_shape` started. Returns (page size, count, damage). A
/// damaged file (truncated mid-page, pages missing) is copied as far as it
/// reads, the gaps as zero pages, and the damage is returned: the snapshot
/// is recorded with a failed check, like a corrupt page (exit 5).
pub(super) fn copy_rows(
    conn: &Connection,
    path: &Path,
    wal: bool,
    (page_size, page_count): (u32, u64),
    out: &mut impl PageSink,
) -> Result<(u32, u64, Vec<String>)> {
    let write_err = |e| Error::io("write image of", path)(e);
    out.set_page_size(page_size).map_err(write_err)?;
    let lock_page = lock_byte_page(page_size);
    let zeros = vec![0u8; page_size as usize];
    let mut stmt = conn
        .prepare("SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno")
        .map_err(Error::sqlite(path))?;
    let mut rows = stmt.query([]).map_err(Error::sqlite(path))?;
    let mut n = 0u64;
    let mut damage = Vec::new();
    let mut first_page = Vec::new();
    let mut put = |page: &[u8]| out.write_all(page).map_err(write_err);
    while let Some(row) = rows.next().map_err(Error::sqlite(path))? {
        let pgno = row.get::<_, i64>(0).map_err(Error::sqlite(path))? as u64;
        let data = row
            .get_ref(1)
            .and_then(|v| Ok(v.as_blob()?))
            .map_err(Error::sqlite(path))?;
        if pgno == 1 {
            first_page = data[..data.len().min(100)].to_vec();
        }
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
    // Inside the read transaction a rollback-mode writer cannot be
    // changing the file, so its length (from `stat`: no descriptor is
    // opened, see `file_shape`) and its header agree unless it is damaged.
    if !wal {
        let len = std::fs::metadata(path).map_or(0, |m| m.len());
        damage.extend(shape(&first_page, len));
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
    out.flush().map_err(write_err)?;
    Ok((page_size, n, damage))
}

/// Fallback without `sqlite_dbpage`: the backup API in one `step(-1)` (never
/// small steps, which restart forever under writes), into a private file.
pub(super) fn backup_pages(
    conn: &Connection,
    path: &Path,
    copy: tempfile::NamedTempFile,
    out: &mut std::fs::File,
) -> Result<(u32, u64)> {
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
