//! One watched database: a read-only connection kept open (so the
//! application closing its last connection never deletes the log the
//! watcher follows), and at each look one short read transaction that
//! decides what changed and, when something did, records a point.
//!
//! Invariant: nothing here writes to the database: the connection is
//! read-only and never checkpoints, even when it closes last.

use super::changes::{self, Change};
use super::point::{self, Last, Spec};
use crate::error::{Error, Result};
use crate::format::record::{LogAt, Point};
use crate::store::{Store, StoreLock};
use rusqlite::{config::DbConfig, Connection, OpenFlags};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What one look did.
#[derive(Debug)]
pub(crate) enum Looked {
    /// Nothing was committed since the last point.
    Nothing,
    /// A point was recorded.
    Point { last: Box<Last>, added: u64 },
    /// The database is gone: its history ends.
    Ended(String),
}

pub(crate) struct Follower {
    pub path: PathBuf,
    conn: Option<(Connection, (u64, u64))>,
    pub last: Option<Last>,
    /// Why the next point starts a window (the history before it is not
    /// continuous with it); set until a point is recorded.
    starts: Option<String>,
    /// The last look's position was none (no frame since the log's index
    /// was created) while this watcher's connection was open.
    unpositioned: bool,
    /// In rollback mode: the file change counter and page count last seen.
    rollback: Option<([u8; 4], u64)>,
    /// The last look was put off (the store was busy).
    pub put_off: bool,
    /// Points recorded since the index was last compacted.
    since_compaction: u32,
}

/// Points between two compactions of the index (5 minutes at a point a
/// second; about 0.1 s for the index of a 10 GiB database).
const COMPACT_EVERY: u32 = 300;

impl Follower {
    pub fn new(path: PathBuf, last: Option<Last>) -> Follower {
        let starts = Some(match &last {
            Some(l) => format!(
                "the watcher started (not watched since {})",
                l.record.time.to_rfc3339()
            ),
            None => "the watcher started (the database's first point)".into(),
        });
        Follower {
            path,
            conn: None,
            last,
            starts,
            unpositioned: false,
            rollback: None,
            put_off: false,
            since_compaction: 0,
        }
    }

    /// Looks once; records a point when something was committed.
    pub fn look(&mut self, store: &Store, tags: &[String], wait: Duration) -> Result<Looked> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(self.gone()),
            Err(e) => return Err(Error::io("stat", &self.path)(e)),
        };
        let identity = (meta.dev(), meta.ino());
        if self.conn.as_ref().is_some_and(|(_, i)| *i != identity) {
            self.conn = None;
            self.starts = Some("the database was replaced (a new file at its path)".into());
        }
        if self.conn.is_none() {
            self.conn = Some((open(&self.path)?, identity));
            self.unpositioned = false;
            self.rollback = None;
        }
        let lock = store.lock("watch", wait)?;
        // Under the writer's lock gc cannot run: a previous point whose
        // record is still here keeps every unit it names until the next.
        if self
            .last
            .as_ref()
            .is_some_and(|l| !store.has_snapshot(&l.id))
        {
            self.last = None;
            self.starts = Some("the previous point was forgotten".into());
        }
        let (conn, _) = self.conn.as_ref().expect("opened");
        conn.execute_batch("BEGIN")
            .map_err(Error::sqlite(&self.path))?;
        let looked = self.in_txn(store, lock, tags, identity);
        let (conn, _) = self.conn.as_ref().expect("opened");
        let _ = conn.execute_batch("COMMIT");
        looked
    }

    fn gone(&mut self) -> Looked {
        if self.conn.take().is_none() {
            return Looked::Nothing;
        }
        self.starts = Some("the database was removed and created again".into());
        Looked::Ended("the database was removed: its history ends at its last point".into())
    }

    fn in_txn(
        &mut self,
        store: &Store,
        lock: StoreLock,
        tags: &[String],
        identity: (u64, u64),
    ) -> Result<Looked> {
        let (conn, _) = self.conn.as_ref().expect("opened");
        let path = &self.path;
        let q = |sql: &str| {
            conn.query_row(sql, [], |r| r.get::<_, i64>(0))
                .map_err(Error::sqlite(path))
        };
        let shape = (
            q("PRAGMA page_size")? as u32,
            q("PRAGMA page_count")? as u64,
        );
        let time = chrono::Local::now().fixed_offset();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(Error::sqlite(path))?;
        let prev = self.last.as_ref().filter(|l| l.identity == identity);
        let prev_log = prev.and_then(|l| l.record.point.as_ref()?.log);
        let wal = mode.eq_ignore_ascii_case("wal");
        let (change, log, log_read, seen) = match wal {
            true => self.wal_change(conn, prev_log.as_ref()),
            false => self.rollback_change(conn, shape)?,
        };
        let change = match (&change, prev) {
            (Change::Pages(_) | Change::Nothing, None) => {
                Change::Unknown("the database's first point in this store".into())
            }
            _ => change,
        };
        if change == Change::Nothing {
            return Ok(Looked::Nothing);
        }
        let mut repo = store.repository_with(lock)?;
        let full_read = match &change {
            Change::Unknown(why) => Some(why.clone()),
            _ => None,
        };
        let spec = Spec {
            path: &self.path,
            conn,
            change: &change,
            last: prev,
            shape,
            point: Point {
                starts: self.starts.clone(),
                full_read,
                pages_read: 0,
                log_read,
                log,
            },
            time,
            tags,
            journal_mode: mode.to_ascii_lowercase(),
            identity,
        };
        let whole = spec.point.full_read.is_some();
        let written = point::write(&repo, spec)?;
        // The index's copy-on-write commits leave freed pages behind: they
        // are compacted after a full read and every `COMPACT_EVERY` points,
        // so a take (which compacts) finds little to move.
        self.since_compaction += 1;
        if whole || self.since_compaction >= COMPACT_EVERY {
            self.since_compaction = 0;
            let _ = repo.compact();
        }
        Ok(self.recorded(written, wal, seen, log))
    }

    /// Keeps what a look saw as the base of the next one, once its image
    /// is stored (or found to be the previous point's).
    fn recorded(
        &mut self,
        written: Option<(Last, u64)>,
        wal: bool,
        seen: Option<([u8; 4], u64)>,
        log: Option<LogAt>,
    ) -> Looked {
        match wal {
            true => self.unpositioned = seen.is_none(),
            false => self.rollback = seen,
        }
        let Some((last, added)) = written else {
            // Every page read, and none differed: the previous point is
            // this state too, now known at this place in the log.
            if let Some(p) = self.last.as_mut().and_then(|l| l.record.point.as_mut()) {
                p.log = log;
            }
            return Looked::Nothing;
        };
        self.starts = None;
        self.last = Some(last.clone());
        Looked::Point {
            last: Box::new(last),
            added,
        }
    }

    /// What changed, from the log; the last element is None when SQLite
    /// gave no position.
    fn wal_change(&self, conn: &Connection, prev: Option<&LogAt>) -> Seen {
        let Some(now) = crate::source::streamed::wal_position(conn) else {
            // No frame since the log's index was created, twice in a row
            // on this connection: the file alone was, and is, the state.
            let change = match self.unpositioned {
                true => Change::Nothing,
                false => Change::Unknown(
                    "SQLite gave no place in the log (no frame since it was opened)".into(),
                ),
            };
            return (change, None, 0, None);
        };
        let l = changes::look(&wal_path(&self.path), prev, now);
        (l.change, l.at, l.read, Some(([0; 4], 0)))
    }

    /// Rollback mode has no log: a new file change counter or page count
    /// means some page changed, and every page is read.
    fn rollback_change(&self, conn: &Connection, shape: (u32, u64)) -> Result<Seen> {
        let counter: Vec<u8> = conn
            .query_row(
                "SELECT substr(data, 25, 4) FROM sqlite_dbpage WHERE pgno = 1",
                [],
                |r| r.get(0),
            )
            .map_err(Error::sqlite(&self.path))?;
        let seen = (counter.try_into().unwrap_or([0; 4]), shape.1);
        let change = match self.rollback == Some(seen) {
            true => Change::Nothing,
            false => Change::Unknown("rollback journal mode: no log to follow".into()),
        };
        Ok((change, None, 0, Some(seen)))
    }
}

/// (change, the new place in the log, bytes of log read, what was seen
/// that the next look compares with).
type Seen = (Change, Option<LogAt>, u64, Option<([u8; 4], u64)>);

/// The database's log file.
pub(super) fn wal_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_os_string();
    p.push("-wal");
    PathBuf::from(p)
}

/// A read-only connection that never checkpoints, even closing last.
pub(super) fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(Error::sqlite(path))?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .map_err(Error::sqlite(path))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(Error::sqlite(path))?;
    Ok(conn)
}
