//! Capture through a private image file in the store's `tmp/` (rollback
//! mode, the backup API, files SQLite cannot read): the copy runs ahead of
//! the storing into the file, which is then checked. A WAL database needs
//! no image (`source::streamed`).

use super::check::check_image;
use super::copy::copy_pages;
use super::growing::Growing;
use super::sqlite::{Captured, Storing};
use crate::dedup::ChunkWriter;
use crate::error::{Error, Result};
use rusqlite::Connection;
use std::io::Seek;
use std::path::Path;

/// Copies the pages into `image` while another thread stores the units
/// already copied; once the copy is done, checks the image here while the
/// storing finishes. The store's result is used only if the copy succeeded
/// and the store read exactly the pages the copy wrote; otherwise (never
/// seen) the finished image is stored again from the file.
pub(super) fn copy_store_check(
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
        let copied = copy_pages(conn, path, wal, growing.writer(shared.as_file()));
        growing.finish(copied.is_ok());
        drop(end);
        let check = copied.is_ok().then(|| check_image(shared.path(), how.full));
        (copied, stored.join(), check)
    });
    let (page_size, page_count, damage) = copied?;
    let (chunks, stored_pages) =
        stored.map_err(|_| Error::Internal("storing the image panicked".into()))??;
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
pub(super) fn store_check(
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
        .map_err(|_| Error::Internal("the check of the image panicked".into()))?
        .map_err(Error::sqlite(&image_path))?;
    Ok(Captured {
        page_size,
        page_count,
        damage,
        chunks,
        check,
    })
}

/// Runs `f` with a new private image file in the store's `tmp/`, deleted
/// afterwards. The database and its WAL bound the image's size: the store
/// refuses up front when that cannot fit, rather than fill the disk.
pub(super) fn with_image<T>(
    db: &Path,
    writer: &mut ChunkWriter,
    f: impl FnOnce(&mut tempfile::NamedTempFile, &mut ChunkWriter) -> Result<T>,
) -> Result<T> {
    let mut wal = db.as_os_str().to_os_string();
    wal.push("-wal");
    let need = [db.as_os_str(), wal.as_os_str()]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum::<u64>();
    let mut image = writer.store().image_file(need, db)?;
    f(&mut image, writer)
}
