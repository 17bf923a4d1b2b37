//! An in-process world for model-based and crash tests: a data directory
//! (files and a SQLite database whose pages change, revert and repeat) and a
//! store with small packs, driven through the library.

use super::Rng;
use rusqlite::Connection;
use snap::gc::{GcOptions, GcReport};
use snap::retention::Policy;
use snap::{SnapshotId, Store, StoreConfig};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A change to the data directory.
#[derive(Clone, Debug)]
pub enum Change {
    /// Rewrite file `n` (of 3) with content from `seed` (sizes vary; seeds repeat).
    File { n: u8, seed: u8 },
    /// Replace row `row`'s page-sized blob with one of a few contents.
    DbSet { row: u8, val: u8 },
    /// Flip one byte of a row's blob: the page becomes a delta of its old self.
    DbEdit { row: u8, at: u16 },
    /// Put back an earlier version of the whole database file.
    DbRevert { version: u8 },
}

pub struct World {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub store: Store,
    clock: i64,
    versions: Vec<Vec<u8>>,
}

pub const ROWS: u8 = 6;

fn blob(val: u8) -> Vec<u8> {
    Rng(val as u64 + 100).bytes(3000)
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir_all(&data).unwrap();
        let c = Connection::open(data.join("app.db")).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=delete; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)",
        )
        .unwrap();
        for row in 0..ROWS {
            c.execute("INSERT INTO t VALUES (?1, ?2)", (row, blob(row)))
                .unwrap();
        }
        drop(c);
        let config = StoreConfig {
            pack_size: 96 << 10,
            ..StoreConfig::default()
        };
        let store = Store::init(dir.path().join("store"), config).unwrap();
        World {
            dir,
            data,
            store,
            clock: 0,
            versions: Vec::new(),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.store.root().to_path_buf()
    }

    pub fn apply(&mut self, change: &Change) {
        let db = self.data.join("app.db");
        match *change {
            Change::File { n, seed } => {
                let size = 1000 + (seed as usize % 4) * 70_000;
                fs::write(
                    self.data.join(format!("f{}", n % 3)),
                    Rng(seed as u64).bytes(size),
                )
                .unwrap();
            }
            Change::DbSet { row, val } => {
                let c = Connection::open(&db).unwrap();
                c.execute(
                    "UPDATE t SET v = ?1 WHERE id = ?2",
                    (blob(val % 5), row % ROWS),
                )
                .unwrap();
            }
            Change::DbEdit { row, at } => {
                let c = Connection::open(&db).unwrap();
                let mut v: Vec<u8> = c
                    .query_row("SELECT v FROM t WHERE id = ?1", [row % ROWS], |r| r.get(0))
                    .unwrap();
                let i = at as usize % v.len();
                v[i] ^= 0x5a;
                c.execute("UPDATE t SET v = ?1 WHERE id = ?2", (v, row % ROWS))
                    .unwrap();
            }
            Change::DbRevert { version } => {
                if !self.versions.is_empty() {
                    let v = &self.versions[version as usize % self.versions.len()];
                    fs::write(&db, v).unwrap();
                }
            }
        }
    }

    /// What a restore of the data directory must reproduce.
    pub fn expected(&self) -> String {
        digest(&self.data)
    }

    /// One look of a watcher at the database: the point it recorded, if any.
    pub fn point(&mut self) -> Option<SnapshotId> {
        let mut id = None;
        let opts = snap::watch::WatchOptions {
            paths: vec![self.data.join("app.db")],
            duration: Some(Duration::ZERO),
            ..Default::default()
        };
        let r = snap::watch::watch(&self.store, &opts, |e| {
            if let snap::watch::WatchEvent::Point { id: p, .. } = e {
                id = Some(*p);
            }
        })
        .unwrap();
        assert!(id.is_some() || r.points == 0);
        id
    }

    pub fn take(&mut self) -> snap::Result<SnapshotId> {
        self.clock += 1;
        let time = chrono::DateTime::from_timestamp(1_767_225_600 + self.clock * 3600, 0)
            .unwrap()
            .fixed_offset();
        let r = snap::take(
            &self.store,
            &snap::TakeOptions {
                paths: vec![self.data.clone()],
                time: Some(time),
                lock_wait: snap::LockWait(Duration::from_secs(10)),
                ..Default::default()
            },
        )?;
        self.versions
            .push(fs::read(self.data.join("app.db")).unwrap());
        Ok(r.id.expect("a snapshot"))
    }

    pub fn gc(&self, keep_last: u32, threshold: f64, dry_run: bool) -> snap::Result<GcReport> {
        snap::gc::gc(
            &self.store,
            &GcOptions {
                policy: Policy {
                    keep_last: Some(keep_last),
                    ..Default::default()
                },
                repack_threshold: threshold,
                dry_run,
                lock_wait: snap::LockWait(Duration::from_secs(10)),
                ..Default::default()
            },
        )
    }

    pub fn repair(&self) -> snap::Result<()> {
        let _lock = self.store.lock("repair", Duration::from_secs(10))?;
        snap::store::packs::rebuild_index(&self.store).map(|_| ())
    }

    pub fn listed(&self) -> Vec<SnapshotId> {
        self.store.snapshot_ids().unwrap()
    }

    /// The store verifies (data re-read) and every snapshot it lists restores
    /// to what `model` says it holds; a listed snapshot the model lacks fails.
    pub fn check(&self, model: &HashMap<SnapshotId, String>) -> Result<(), String> {
        check_store(&self.store, model)
    }
}

/// The store verifies and every listed snapshot restores as `model` says.
pub fn check_store(store: &Store, model: &HashMap<SnapshotId, String>) -> Result<(), String> {
    let report = snap::verify(
        store,
        &snap::VerifyOptions {
            read_data: true,
            lock_wait: snap::LockWait(Duration::from_secs(10)),
            ..Default::default()
        },
    )
    .map_err(|e| format!("verify: {e}"))?;
    if !report.ok() {
        return Err(format!("verify: {:?}", report.problems));
    }
    for id in store.snapshot_ids().unwrap() {
        let want = model
            .get(&id)
            .ok_or(format!("snapshot {id} is not in the model"))?;
        let out = tempfile::tempdir().unwrap();
        snap::restore(
            store,
            &snap::RestoreOptions {
                snapshot: id.to_hex(),
                to: Some(out.path().to_path_buf()),
                lock_wait: snap::LockWait(Duration::from_secs(10)),
                ..Default::default()
            },
        )
        .map_err(|e| format!("restore {id}: {e}"))?;
        // A point (`watch`) holds the database alone.
        let got = match out.path().join("data").exists() {
            true => digest(&out.path().join("data")),
            false => db_digest(&out.path().join("app.db")),
        };
        if &got != want {
            return Err(format!("snapshot {id} restored different content"));
        }
    }
    Ok(())
}

/// The database by its rows.
pub fn db_digest(p: &Path) -> String {
    let c = Connection::open(p).unwrap();
    let mut stmt = c.prepare("SELECT id, v FROM t ORDER BY id").unwrap();
    let rows: Vec<(i64, Vec<u8>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    blake3::hash(format!("{rows:?}").as_bytes())
        .to_hex()
        .to_string()
}

/// Files by content, the database by its rows.
pub fn digest(dir: &Path) -> String {
    let mut parts = BTreeMap::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with("-journal") || name.ends_with("-wal") || name.ends_with("-shm") {
            continue;
        }
        let h = if name == "app.db" {
            db_digest(&p)
        } else {
            blake3::hash(&fs::read(&p).unwrap()).to_hex().to_string()
        };
        parts.insert(name, h);
    }
    format!("{parts:?}")
}
