//! The local store: a directory of immutable packs and snapshot records, a
//! `config`, and a redb index that is only a cache of what the packs say.
//!
//! ```text
//! STORE/config                       store format version and parameters (JSON)
//! STORE/packs/<2 hex>/<64 hex>.pack  packs, named by the BLAKE3 of their bytes
//! STORE/snapshots/<64 hex>.json      snapshot records, named by their BLAKE3
//! STORE/index.redb                   chunk -> location, pack -> size, catalog
//! STORE/lock                         held (flock) by the process using the index
//! STORE/tmp/                         temporary files before their rename
//! ```

mod chain;
mod config;
mod extents;
mod files;
pub mod index;
mod layout;
pub mod lock;
pub(crate) mod packer;
pub mod packs;
mod reach;
pub mod reader;
mod records;
mod repository;
mod similar;
pub mod source;
mod sweep;
mod verified;
pub(crate) mod writer;

use crate::durable;
use crate::error::{Error, Result};
use crate::format::record::Snapshot;
use crate::id::{PackId, SnapshotId};
use std::fs;
use std::path::{Path, PathBuf};

pub use chain::Base;
use config::OLDEST_FORMAT;
pub use config::{ChunkerParams, StoreConfig, FORMAT_VERSION};
pub use extents::Extents;
pub(crate) use files::Staging;
pub use index::{Index, Location};
pub use lock::{LockWait, StoreLock};
pub use packer::Levels;
pub use reader::StoreReader;
pub use repository::{Access, Repository};
pub(crate) use similar::Pool;
pub use source::PackSource;
use source::Packs;
pub use sweep::{Facts, Fate, PackInfo, PackPlan};
pub use verified::Verified;
pub use writer::Abandoned;

/// Snapshots with their ids, oldest first.
pub type Snapshots = Vec<(SnapshotId, Snapshot)>;

/// An empty directory, or one an `init` killed before it wrote `config`
/// left behind (only the empty skeleton): a new store may be made there.
fn empty_or_unfinished(root: &Path) -> Result<bool> {
    for entry in fs::read_dir(root).map_err(Error::io("read", root))? {
        let entry = entry.map_err(Error::io("read", root))?;
        let name = entry.file_name();
        let skeleton = ["packs", "snapshots", "tmp", "lock"].contains(&name.to_str().unwrap_or(""));
        let empty = name == "tmp"
            || name == "lock"
            || fs::read_dir(entry.path()).is_ok_and(|mut d| d.next().is_none());
        if !(skeleton && empty) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// An opened store: its layout and configuration. Operations that use the
/// index take the store lock first (see `lock`).
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
    config: StoreConfig,
    /// Where packs are read from besides (or instead of) `packs/`.
    packs: Packs,
    /// Where long operations on this store report their progress.
    progress: crate::progress::Reporter,
    /// Chunks read past a damaged index row (shared by clones of this handle).
    bad_rows: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<crate::id::ChunkId>>>,
}

impl Store {
    /// Creates a new, empty store at `root` (which may exist if empty).
    pub fn init(root: impl AsRef<Path>, config: StoreConfig) -> Result<Store> {
        let root =
            &std::path::absolute(root.as_ref()).map_err(Error::io("resolve", root.as_ref()))?;
        if root.join("config").exists() {
            return Err(Error::Invalid(format!(
                "{} already holds a snap store",
                root.display()
            )));
        }
        if root.is_dir() && !empty_or_unfinished(root)? {
            return Err(Error::Invalid(format!(
                "{} is not empty; a new store needs an empty or missing directory",
                root.display()
            )));
        }
        for dir in ["packs", "snapshots", "tmp"] {
            durable::create_dir_durable(&root.join(dir))?;
        }
        let bytes = serde_json::to_vec_pretty(&config).expect("config encodes");
        // The config is written last: a directory without it is not a store.
        durable::write_atomic(&root.join("tmp"), &root.join("config"), &bytes)?;
        Store::open(root)
    }

    pub fn open(root: impl AsRef<Path>) -> Result<Store> {
        let root =
            std::path::absolute(root.as_ref()).map_err(Error::io("resolve", root.as_ref()))?;
        let path = root.join("config");
        let bytes = fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound(format!(
                    "no snap store at {} (initialize one first)",
                    root.display()
                ))
            } else {
                Error::io("read", &path)(e)
            }
        })?;
        let config: StoreConfig =
            serde_json::from_slice(&bytes).map_err(|e| Error::corrupt("config", e.to_string()))?;
        if !(OLDEST_FORMAT..=FORMAT_VERSION).contains(&config.format) {
            return Err(Error::Invalid(format!(
                "store format {} is not supported by this snap (formats {OLDEST_FORMAT} to {FORMAT_VERSION}): a newer snap wrote it",
                config.format
            )));
        }
        Ok(Store {
            root,
            config,
            packs: Packs::Own,
            progress: Default::default(),
            bad_rows: Default::default(),
        })
    }

    /// Whether a store (its `config`) is at `root`.
    pub fn exists(root: impl AsRef<Path>) -> bool {
        root.as_ref().join("config").exists()
    }

    /// Opens the store at `root`, creating it first if it does not exist.
    pub fn open_or_init(root: impl AsRef<Path>) -> Result<Store> {
        let root = root.as_ref();
        if Store::exists(root) {
            Store::open(root)
        } else {
            Store::init(root, StoreConfig::default())
        }
    }

    /// Operations on this store report their progress (and waits for its
    /// lock) to `reporter`.
    pub fn with_progress(mut self, reporter: crate::progress::Reporter) -> Store {
        self.progress = reporter;
        self
    }

    pub fn progress(&self) -> &crate::progress::Reporter {
        &self.progress
    }

    /// A view: a store with an index and records but no packs of its own;
    /// every pack is read from `source`.
    pub(crate) fn with_view_source(mut self, source: std::sync::Arc<dyn PackSource>) -> Store {
        self.packs = Packs::View(source);
        self
    }

    /// A pack missing or damaged in `packs/` is read from `source` instead,
    /// and named by `fell_back`.
    pub fn with_fallback(mut self, source: std::sync::Arc<dyn PackSource>) -> Store {
        self.packs = Packs::Fallback(source, Default::default());
        self
    }

    /// Is this store a view (no packs of its own)?
    pub(crate) fn is_view(&self) -> bool {
        matches!(self.packs, Packs::View(_))
    }

    /// The source packs are read from when `packs/` cannot give them.
    pub fn source(&self) -> Option<&dyn PackSource> {
        match &self.packs {
            Packs::Own => None,
            Packs::View(s) | Packs::Fallback(s, _) => Some(s.as_ref()),
        }
    }

    /// Packs whose copy here was missing or damaged and that were read from
    /// the fallback source instead.
    pub fn fell_back(&self) -> Vec<PackId> {
        match &self.packs {
            Packs::Fallback(_, f) => f.lock().expect("fell_back lock").iter().copied().collect(),
            _ => Vec::new(),
        }
    }

    /// Chunks whose index row was damaged and that were read where the pack
    /// headers put them (`repair index` rebuilds the index).
    pub(crate) fn bad_rows(&self) -> usize {
        self.bad_rows.lock().expect("bad rows lock").len()
    }

    pub(crate) fn note_bad_row(&self, id: &crate::id::ChunkId) {
        self.bad_rows.lock().expect("bad rows lock").insert(*id);
    }

    pub(crate) fn note_fell_back(&self, id: &PackId) {
        if let Packs::Fallback(_, f) = &self.packs {
            f.lock().expect("fell_back lock").insert(*id);
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Marks an older store as written in this snap's format, before
    /// anything in the new format is written to it (a delta chain); durable
    /// like any config write. A view's config is not its own: left alone.
    pub(crate) fn upgrade_format(&self) -> Result<()> {
        if self.config.format >= FORMAT_VERSION || self.is_view() {
            return Ok(());
        }
        let config = StoreConfig {
            format: FORMAT_VERSION,
            ..self.config.clone()
        };
        let bytes = serde_json::to_vec_pretty(&config).expect("config encodes");
        durable::write_atomic(&self.tmp_dir(), &self.root.join("config"), &bytes)
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Takes the store lock exclusively for `what` (a command name, shown to
    /// waiters): for commands that write the index or delete.
    pub fn lock(&self, what: &str, wait: std::time::Duration) -> Result<StoreLock> {
        StoreLock::acquire(&self.root, what, wait, &self.progress)
    }

    /// Takes the writer's lock and excludes every reader: for gc, which
    /// deletes packs readers may be reading.
    pub(crate) fn lock_all(&self, what: &str, wait: std::time::Duration) -> Result<StoreLock> {
        StoreLock::acquire_all(&self.root, what, wait, &self.progress)
    }

    /// Takes a reader's lock: for commands that only read. It does not
    /// block a take, only gc.
    pub fn lock_shared(&self, what: &str, wait: std::time::Duration) -> Result<StoreLock> {
        StoreLock::acquire_shared(&self.root, what, wait, &self.progress)
    }

    /// Takes a reader's lock and `file` (relative to the store, in an
    /// existing directory) exclusively: for a mirror, beside writers.
    pub(crate) fn lock_reading_with(
        &self,
        file: &str,
        what: &str,
        wait: std::time::Duration,
    ) -> Result<StoreLock> {
        StoreLock::acquire_reading_with(&self.root, file, what, wait, &self.progress)
    }

    /// Opens the index under the store lock. Under the exclusive lock, files
    /// left in `tmp/` by killed processes are removed first, and a missing or
    /// unreadable index is rebuilt from the packs and records (it is a cache).
    /// Under a shared lock the index is opened read-only; if it cannot be
    /// (missing, or left needing repair by a killed writer), a private copy is
    /// rebuilt in the system's temporary directory.
    pub(crate) fn open_index(&self, lock: &StoreLock) -> Result<Index> {
        if !lock.exclusive() {
            return match Index::open_read_only(&self.index_path()) {
                Ok(index) => Ok(index),
                Err(_) => packs::private_index(self),
            };
        }
        self.clean_tmp()?;
        if !self.index_path().exists() {
            packs::rebuild_index(self)?;
        }
        match Index::open(&self.index_path()) {
            Err(Error::Index(_)) => {
                packs::rebuild_index(self)?;
                Index::open(&self.index_path())
            }
            other => other,
        }
    }

    /// Removes what killed processes left in `tmp/` (temporary packs, images,
    /// index rebuilds). Called under the exclusive lock, when no other snap
    /// process writes there; a young small `.tmp-*` file may belong to a
    /// lock-free writer (job state) and is left alone.
    fn clean_tmp(&self) -> Result<()> {
        let tmp = self.tmp_dir();
        let entries = match fs::read_dir(&tmp) {
            Ok(e) => e,
            Err(e) if lock::read_only(&e) => return Ok(()),
            Err(e) => return Err(Error::io("read", &tmp)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(Error::io("read", &tmp))?;
            let name = entry.file_name();
            let young = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().unwrap_or_default().as_secs() < 600);
            if name.to_string_lossy().starts_with(".tmp-") && young {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                let _ = durable::remove_file(&entry.path());
            }
        }
        Ok(())
    }
}
