//! snap: a content-addressed, deduplicating snapshot store for SQLite
//! databases and the data directories around them.
//!
//! Glossary (DESIGN.md has the byte layouts): a **chunk** is a piece of
//! content, named by its **chunk id** (BLAKE3 of the plain bytes); a **pack**
//! is an immutable file of compressed chunks with a header at its end; the
//! **index** (redb) maps chunk ids to pack locations and is only a cache of the
//! packs; a **manifest** is the tree of a snapshot's files and chunk lists,
//! itself stored as chunks; a **snapshot** record names a manifest, with time,
//! paths, tags and figures; the **store** is the directory holding all of it.
//!
//! ```text
//! take:    source -> chunker -> hash -> dedup (index has it?) -> packer -> store -> manifest -> snapshot
//! restore: snapshot -> manifest -> index -> packs -> decompress -> verify hash -> files (atomic)
//! ```
//!
//! Layout (the data flow, one module a stage):
//! - `source`: walking paths into tree nodes; consistent SQLite capture.
//! - `chunker`: FastCDC for files and trees, pages for database images.
//! - `dedup`: the "index has it?" stage; new chunks go to the store's packer.
//! - `format`: pure encode/decode of packs, trees and snapshot records.
//! - `store`: the repository, the one owner of the locks, the redb index,
//!   the pack files (its packer writes them), the records and the store's
//!   small files; everything else asks it (`Store::repository`).
//! - `durable`: the seam every durable write goes through (a leaf).
//! - `snapshot` (take), `watch` (continuous points, beside take), `restore`
//!   (and tar streams), `mount` (a reader beside restore: snapshots as a
//!   FUSE file system), `verify`, `stats`, `diff`, `recover`, `gc`
//!   (retention plan and pack plan; the store executes it), `mirror`
//!   (remotes), `fleet` (the operator's side of a bucket many stores mirror
//!   into), `jobs` (configuration, schedules, monitoring).
//!
//! The public API is the items re-exported here and the modules `gc`,
//! `diff`, `recover`, `mount`, `stats`, `mirror`, `jobs`, `config`,
//! `retention`, `schedule`, `progress` and `select`. The stage modules are public for the project's
//! own tests, benchmarks and fuzz targets and hidden from the documentation:
//! they may change between versions.
//!
//! Take a snapshot of a data directory, list, and restore the newest
//! snapshot of it elsewhere:
//!
//! ```no_run
//! use snap::{Store, TakeOptions, RestoreOptions};
//! let store = Store::open_or_init("/var/backups/snap")?;
//! let taken = snap::take(&store, &TakeOptions { paths: vec!["/srv/app/data".into()], ..Default::default() })?;
//! for (id, s) in snap::list(&store)? { println!("{id} {}", s.time); }
//! snap::restore(&store, &RestoreOptions { snapshot: "latest:/srv/app/data".into(), to: Some("/tmp/back".into()), ..Default::default() })?;
//! # Ok::<(), snap::Error>(())
//! ```

#![deny(missing_docs)]

pub mod cancel;
#[doc(hidden)]
pub mod chunker;
pub mod dedup;
pub mod diff;
#[doc(hidden)]
pub mod durable;
pub mod error;
pub mod fleet;
#[doc(hidden)]
pub mod format;
pub mod id;
pub mod mount;
#[doc(hidden)]
pub mod progress;
pub mod recover;
pub mod restore;
pub mod select;
pub mod snapshot;
#[doc(hidden)]
pub mod source;
pub mod stats;
#[doc(hidden)]
pub mod store;
pub mod verify;
pub mod watch;

pub use error::{Error, Result};
pub use format::record::Snapshot;
pub use id::{ChunkId, PackId, SnapshotId};
pub use progress::{Event, Reporter};
pub use restore::{restore, RestoreOptions, RestoreReport};
pub use select::Selection;
pub use snapshot::{take, TakeOptions, TakeReport};
pub use source::sqlite::CaptureOptions;
pub use store::{Access, LockWait, Repository, Store, StoreConfig};
pub use verify::{verify, VerifyOptions, VerifyReport};

/// All snapshots in the store, oldest first.
pub fn list(store: &Store) -> Result<Vec<(SnapshotId, Snapshot)>> {
    store.snapshots()
}

/// Forgets snapshots: their records are removed (durably, under the
/// exclusive lock); `gc` then frees the space only they used. Returns the
/// ids forgotten.
pub fn forget(store: &Store, ids: &[SnapshotId], lock_wait: LockWait) -> Result<Vec<SnapshotId>> {
    let repo = store.repository(store::Access::Write, "forget", lock_wait.0)?;
    for id in ids {
        store.load_snapshot(id)?;
    }
    repo.forget(ids)?;
    Ok(ids.to_vec())
}
/// A snapshot's tags changed after the fact (restic's `tag`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Retagged {
    /// The record replaced.
    pub old: SnapshotId,
    /// The record that replaces it (the same snapshot with the new tags);
    /// equal to `old` when the tags were already so.
    pub new: SnapshotId,
    /// Its tags now.
    pub tags: Vec<String>,
}

/// Adds and removes tags of a snapshot. Records are immutable and named by
/// their bytes, so the snapshot gets a new record (a new id) with the same
/// tree, time and figures; the old record is removed only once the new one
/// is durable (a crash between leaves both, never neither). Under the
/// writer's lock, so gc never sees the snapshot missing.
pub fn tag(
    store: &Store,
    id: &SnapshotId,
    add: &[String],
    remove: &[String],
    lock_wait: LockWait,
) -> Result<Retagged> {
    let repo = store.repository(store::Access::Write, "tag", lock_wait.0)?;
    let mut snapshot = store.load_snapshot(id)?;
    let before = snapshot.tags.clone();
    snapshot.tags.retain(|t| !remove.contains(t));
    for t in add {
        if t.is_empty() || t.contains(',') {
            return Err(Error::Invalid(format!(
                "tag {t:?}: a tag is not empty and has no comma"
            )));
        }
        if !snapshot.tags.contains(t) {
            snapshot.tags.push(t.clone());
        }
    }
    if snapshot.tags == before {
        return Ok(Retagged {
            old: *id,
            new: *id,
            tags: before,
        });
    }
    // The new record is durable before the old one goes.
    let new = repo.write_snapshot(&snapshot)?;
    repo.forget(&[*id])?;
    Ok(Retagged {
        old: *id,
        new,
        tags: snapshot.tags,
    })
}

pub mod config;
pub mod gc;
pub mod jobs;
pub mod mirror;
pub mod retention;
pub mod schedule;
