//! A take of a watched database: when its newest point (written by a
//! watcher into this store) can be followed through the log, the take reads
//! only the units of the pages committed since that point, in one short
//! read transaction, like a watcher's look; the structural check, where it
//! runs, is timed on its own. Anything that cannot be followed returns None
//! and the take captures the database as it always did.

use super::changes::{self, Change};
use super::point::{self, Spec};
use crate::dedup::ChunkWriter;
use crate::error::{Error, Result};
use crate::format::record::Point;
use crate::format::tree::Database;
use crate::store::Store;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

/// How many of the most recently written records are searched for the
/// database's newest point (a watched database's is among the newest).
const RECENT: usize = 2000;

/// What a followed capture read and stored.
pub(crate) struct Followed {
    /// The image (its `chunks`: its unit list's).
    pub db: Database,
    /// Bytes of the database read (the changed units).
    pub read: u64,
    /// Bytes of the log read.
    pub log_read: u64,
    /// Milliseconds the check took (0 when none ran).
    pub check_ms: u64,
    /// The point it followed from.
    pub from: crate::id::SnapshotId,
}

/// Captures `path` from its newest point, or None when that cannot be
/// done (no point with a place in the log, another file, rollback mode, a
/// log that restarted twice since): then the caller captures it whole.
/// `check`: run `quick_check` (or `integrity_check` with `Some(true)`) on
/// the same read transaction.
pub fn follow(
    store: &Store,
    w: &mut ChunkWriter,
    path: &Path,
    check: Option<bool>,
) -> Result<Option<Followed>> {
    let repo = w.repository();
    let Some(last) = super::newest_point_in(store, path, repo, RECENT)? else {
        return Ok(None);
    };
    let Some(prev) = last.record.point.as_ref().and_then(|p| p.log) else {
        return Ok(None);
    };
    let meta = std::fs::metadata(path).map_err(Error::io("stat", path))?;
    if (meta.dev(), meta.ino()) != last.identity {
        return Ok(None);
    }
    let conn = super::follower::open(path)?;
    conn.execute_batch("BEGIN").map_err(Error::sqlite(path))?;
    let q = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(Error::sqlite(path))?;
    let shape = (
        q("PRAGMA page_size").map_err(Error::sqlite(path))? as u32,
        q("PRAGMA page_count").map_err(Error::sqlite(path))? as u64,
    );
    let now = crate::source::streamed::wal_position(&conn);
    let (Some(now), true) = (now, mode.eq_ignore_ascii_case("wal")) else {
        return Ok(None);
    };
    let look = changes::look(&super::follower::wal_path(path), Some(&prev), now);
    if matches!(look.change, Change::Unknown(_)) || shape.0 != last.db.page_size {
        return Ok(None);
    }
    let spec = Spec {
        path,
        conn: &conn,
        change: &look.change,
        last: Some(&last),
        shape,
        point: Point::default(),
        time: chrono::Local::now().fixed_offset(),
        tags: &[],
        journal_mode: mode.to_ascii_lowercase(),
        identity: last.identity,
    };
    let (db, read) = point::image(w, &spec, &last)?;
    let (db, check_ms) = match check {
        None => (db, 0),
        Some(full) => {
            let start = Instant::now();
            let (check, tables) =
                crate::source::check::check_conn(&conn, full).map_err(Error::sqlite(path))?;
            let kind = if full {
                "integrity_check"
            } else {
                "quick_check"
            };
            let db = Database {
                check,
                check_kind: kind.into(),
                tables,
                ..db
            };
            (db, start.elapsed().as_millis() as u64)
        }
    };
    let _ = conn.execute_batch("COMMIT");
    Ok(Some(Followed {
        db,
        read,
        log_read: look.read,
        check_ms,
        from: last.id,
    }))
}
