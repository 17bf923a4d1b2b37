//! The repository: what a command holds while it uses a store (its lock,
//! its index and a reader over them), owned together and dropped in that
//! order (the reader first, the lock last). Commands, a long-lived reader
//! (mount) and a long-lived writer (watch) ask the store for one of these
//! instead of repeating lock → index → reader; the operations that change
//! the store's records and index go through it.

use super::{Index, Store, StoreLock, StoreReader};
use crate::durable;
use crate::error::Result;
use crate::format::pack::PackEntry;
use crate::format::record::Snapshot;
use crate::id::{PackId, SnapshotId};
use std::time::Duration;

/// How a repository is held (DESIGN.md, "Concurrency").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The readers' shared lock: beside takes and other readers; only gc
    /// waits for it.
    Read,
    /// The writer's lock: one writer (take, watch, forget) at a time,
    /// beside readers.
    Write,
    /// The writer's lock and every reader excluded: for gc, which deletes
    /// packs readers may be reading.
    Exclusive,
}

/// An opened repository (see `Store::repository`).
pub struct Repository {
    // Field order is drop order. The reader is None only while the index
    // is compacted or rebuilt, the index only while it is rebuilt.
    reader: Option<StoreReader>,
    index: Option<Index>,
    lock: StoreLock,
    store: Store,
}

impl Store {
    /// Takes the store's lock for `access` (waiting up to `wait`; `what`
    /// names the holder to whoever waits), opens the index and a reader
    /// over it.
    pub fn repository(&self, access: Access, what: &str, wait: Duration) -> Result<Repository> {
        let lock = match access {
            Access::Read => self.lock_shared(what, wait)?,
            Access::Write => self.lock(what, wait)?,
            Access::Exclusive => self.lock_all(what, wait)?,
        };
        self.repository_with(lock)
    }

    /// A reader's repository: `repository(Access::Read, …)`.
    pub fn reading(&self, what: &str, wait: Duration) -> Result<Repository> {
        self.repository(Access::Read, what, wait)
    }

    /// The repository under a lock already taken (a watcher takes it,
    /// looks, and opens the index only when there is something to write).
    pub(crate) fn repository_with(&self, lock: StoreLock) -> Result<Repository> {
        let index = self.open_index(&lock)?;
        Ok(Repository {
            reader: Some(StoreReader::new(self, &index)?),
            index: Some(index),
            lock,
            store: self.clone(),
        })
    }
}

impl Repository {
    /// The store it was opened on.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A writer of new chunks into packs and the index (the store's side
    /// of `dedup::ChunkWriter`); the repository holds the writer's lock.
    pub(crate) fn pack_writer(&self) -> super::writer::PackWriter<'_> {
        super::writer::PackWriter::new(&self.store, self.index())
    }

    /// The index.
    pub(super) fn index(&self) -> &Index {
        self.index.as_ref().expect("an index outside a rebuild")
    }

    /// Whether it holds the writer's lock.
    pub fn writes(&self) -> bool {
        self.lock.exclusive()
    }

    /// A second reader over the index as now committed (for a walk that
    /// borrows one reader while its visitor reads with another).
    pub fn new_reader(&self) -> Result<StoreReader> {
        StoreReader::new(&self.store, self.index())
    }

    /// A new reader over the index as now committed (a reader sees the
    /// index as it was when the reader was made).
    pub(crate) fn refresh(&mut self) -> Result<()> {
        self.reader = None;
        self.reader = Some(StoreReader::new(&self.store, self.index())?);
        Ok(())
    }

    /// Writes a snapshot record (durably), then notes it in the index's
    /// catalog; the packs it names are durable and indexed already
    /// (`ChunkWriter::finish`). The snapshot exists once its record does:
    /// the catalog is a cache a rebuild restores, so its failure is not
    /// the snapshot's.
    pub fn write_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotId> {
        let id = self.store.write_snapshot(snapshot)?;
        let _ = self.index().add_snapshot(&id, snapshot.time.timestamp());
        Ok(id)
    }

    /// Records a pack this store reads from elsewhere (a view of a remote)
    /// in its index, as the pack's header describes it.
    pub(crate) fn note_pack(&self, id: &PackId, size: u64, entries: &[PackEntry]) -> Result<()> {
        self.index().add_pack(id, size, entries)
    }

    /// Writes a record's exact bytes (see `Store::put_record`) and notes it
    /// in the catalog.
    pub(crate) fn put_record(&self, id: &SnapshotId, bytes: &[u8], time: i64) -> Result<()> {
        self.store.put_record(id, bytes)?;
        self.index().add_snapshot(id, time)
    }

    /// Deletes snapshot records (durably: the directory is synced before
    /// this returns), then their index rows. Their chunks stay until gc.
    pub fn forget(&self, ids: &[SnapshotId]) -> Result<()> {
        for id in ids {
            durable::remove_file(&self.store.snapshot_path(id))?;
        }
        durable::fsync_dir(&self.store.root().join("snapshots"))?;
        for id in ids {
            self.index().remove_snapshot(id)?;
        }
        Ok(())
    }

    /// Gives the index file back the space its copy-on-write commits left
    /// behind. The index is a cache: a failed compaction costs only bytes,
    /// so callers warn and go on.
    pub fn compact(&mut self) -> Result<()> {
        // redb compacts only with no read transaction open.
        self.reader = None;
        let compacted = self.index.as_mut().expect("an index").compact();
        self.refresh()?;
        compacted
    }

    /// Rebuilds the index from the packs and records (it is a cache), under
    /// the writer's lock, and reads through the new one.
    pub fn rebuild_index(&mut self) -> Result<super::packs::RebuildReport> {
        self.reader = None;
        self.index = None;
        let report = super::packs::rebuild_index(&self.store);
        self.index = Some(self.store.open_index(&self.lock)?);
        self.refresh()?;
        report
    }

    /// The index file's size in bytes.
    pub fn index_bytes(&self) -> u64 {
        self.store.index_bytes()
    }
}

impl std::ops::Deref for Repository {
    type Target = StoreReader;

    fn deref(&self) -> &StoreReader {
        self.reader.as_ref().expect("a reader outside compaction")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreConfig;

    // A record written through the repository is in the store; forgetting
    // it removes it; a record whose bytes are not its name is refused and
    // nothing is written.
    #[test]
    fn records_are_written_forgotten_and_checked_against_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(dir.path().join("s"), StoreConfig::default()).unwrap();
        let repo = store
            .repository(Access::Write, "test", Duration::ZERO)
            .unwrap();
        let bytes = br#"{"not": "a record, but bytes named by their hash"}"#;
        let id = SnapshotId::of(bytes);
        repo.put_record(&id, bytes, 0).unwrap();
        assert!(store.has_snapshot(&id));
        repo.forget(&[id]).unwrap();
        assert!(!store.has_snapshot(&id));
        let wrong = SnapshotId::of(b"other");
        assert!(repo.put_record(&wrong, bytes, 0).is_err());
        assert!(!store.has_snapshot(&wrong));
    }

    // A reader's repository does not block another reader, and a writer's
    // repository stands beside readers; gc's excludes both.
    #[test]
    fn access_modes_lock_as_stated() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(dir.path().join("s"), StoreConfig::default()).unwrap();
        let wait = Duration::ZERO;
        let r1 = store.repository(Access::Read, "r1", wait).unwrap();
        let r2 = store.repository(Access::Read, "r2", wait).unwrap();
        let w = store.repository(Access::Write, "w", wait).unwrap();
        assert!(w.writes() && !r1.writes());
        assert!(store.repository(Access::Write, "w2", wait).is_err());
        assert!(store.repository(Access::Exclusive, "gc", wait).is_err());
        drop((r1, r2, w));
        assert!(store.repository(Access::Exclusive, "gc", wait).is_ok());
    }
}
