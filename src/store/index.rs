//! The redb index: chunk id -> where its entry lives, pack -> size, and a
//! catalog of snapshot records. It is a cache: `rebuild` recreates it from the
//! pack headers and snapshot records alone.
//!
//! Invariant: the index names a pack only after that pack is durable under its
//! final name, and gc removes a pack's rows (committed) before deleting it. So
//! every location the index returns exists, barring outside damage.

use crate::error::{Error, Result};
use crate::format::pack::{EntryKind, PackEntry};
use crate::id::{ChunkId, PackId, SnapshotId};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

const CHUNKS: TableDefinition<[u8; 32], [u8; 49]> = TableDefinition::new("chunks");
const PACKS: TableDefinition<[u8; 32], (u64, u32)> = TableDefinition::new("packs");
const SNAPSHOTS: TableDefinition<[u8; 32], i64> = TableDefinition::new("snapshots");

/// Where a chunk's entry is: its pack and its header record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub pack: PackId,
    pub entry: PackEntry,
}

fn encode_location(pack: &PackId, e: &PackEntry) -> [u8; 49] {
    let mut v = [0u8; 49];
    v[..32].copy_from_slice(&pack.0);
    v[32..40].copy_from_slice(&e.offset.to_le_bytes());
    v[40..44].copy_from_slice(&e.length.to_le_bytes());
    v[44..48].copy_from_slice(&e.raw_length.to_le_bytes());
    v[48] = e.kind as u8;
    v
}

/// A row's entry kind is checked, never guessed: an unknown kind is corrupt.
fn decode_location(id: ChunkId, v: &[u8; 49]) -> Result<Location> {
    let kind = EntryKind::from_u8(v[48]).ok_or_else(|| {
        Error::corrupt(
            format!("index row of chunk {id}"),
            format!(
                "unknown entry kind {} (`snap repair index` rebuilds the index)",
                v[48]
            ),
        )
    })?;
    Ok(Location {
        pack: PackId(v[..32].try_into().expect("32 bytes")),
        entry: PackEntry {
            kind,
            id,
            offset: u64::from_le_bytes(v[32..40].try_into().expect("8 bytes")),
            length: u32::from_le_bytes(v[40..44].try_into().expect("4 bytes")),
            raw_length: u32::from_le_bytes(v[44..48].try_into().expect("4 bytes")),
        },
    })
}

enum Db {
    Write(Database),
    /// A store on a read-only file system, or opened by a read-only command.
    Read(redb::ReadOnlyDatabase),
}

pub struct Index {
    db: Db,
    /// The directory of a private index (see `Store::open_index`), removed with it.
    _private: Option<tempfile::TempDir>,
}

/// Bounded memory: the cache does not grow with the store.
const CACHE_BYTES: usize = 8 << 20;

impl Index {
    /// Opens (or creates) the index file for writing. The caller holds the
    /// store lock exclusively. Every write goes through the durability seam.
    pub fn open(path: &Path) -> Result<Index> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .set_concurrency_mode(redb::ConcurrencyMode::SingleWriter)
            .create_with_backend(super::durable::IndexBackend::open(path)?)?;
        let tx = db.begin_write()?;
        tx.open_table(CHUNKS)?;
        tx.open_table(PACKS)?;
        tx.open_table(SNAPSHOTS)?;
        tx.commit()?;
        Ok(Index {
            db: Db::Write(db),
            _private: None,
        })
    }

    /// Opens an existing index without writing to it.
    pub fn open_read_only(path: &Path) -> Result<Index> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .set_concurrency_mode(redb::ConcurrencyMode::SingleWriter)
            .open_read_only(path)?;
        Ok(Index {
            db: Db::Read(db),
            _private: None,
        })
    }

    /// An index built in `dir` (a private temporary directory) that lives as
    /// long as it does.
    pub fn open_private(dir: tempfile::TempDir) -> Result<Index> {
        let mut index = Index::open(&dir.path().join("index.redb"))?;
        index._private = Some(dir);
        Ok(index)
    }

    fn db(&self) -> Result<&Database> {
        match &self.db {
            Db::Write(db) => Ok(db),
            Db::Read(_) => Err(Error::Invalid("the index was opened read-only".into())),
        }
    }

    fn begin_read(&self) -> Result<redb::ReadTransaction> {
        Ok(match &self.db {
            Db::Write(db) => db.begin_read()?,
            Db::Read(db) => db.begin_read()?,
        })
    }

    pub fn reader(&self) -> Result<IndexReader> {
        let tx = self.begin_read()?;
        Ok(IndexReader {
            chunks: tx.open_table(CHUNKS)?,
        })
    }

    /// Records a sealed, durable pack and all its entries in one commit.
    /// An id already present keeps its first location.
    pub fn add_pack(&self, pack: &PackId, size: u64, entries: &[PackEntry]) -> Result<()> {
        self.add_packs(&[(*pack, size, entries)])
    }

    /// Records sealed, durable packs and all their entries in one commit
    /// (fewer commits: redb copies every leaf a commit touches, and random
    /// chunk ids touch most of them).
    pub fn add_packs(&self, packs: &[(PackId, u64, &[PackEntry])]) -> Result<()> {
        let tx = self.db()?.begin_write()?;
        {
            let mut chunks = tx.open_table(CHUNKS)?;
            let mut table = tx.open_table(PACKS)?;
            for (pack, size, entries) in packs {
                for e in *entries {
                    if chunks.get(&e.id.0)?.is_none() {
                        chunks.insert(&e.id.0, &encode_location(pack, e))?;
                    }
                }
                table.insert(&pack.0, &(*size, entries.len() as u32))?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// gc's index update, in one commit: the chunk table keeps exactly the
    /// rows of `live` chunks, `moved` rows are (re)written, `gone` packs are
    /// forgotten and `added` packs recorded. Called after every pack it names
    /// is durable, and before any pack file is deleted.
    pub fn apply_gc(
        &self,
        live: &std::collections::HashSet<ChunkId>,
        moved: &[Location],
        gone: &[PackId],
        added: &[(PackId, u64, u32)],
    ) -> Result<()> {
        let tx = self.db()?.begin_write()?;
        {
            let mut chunks = tx.open_table(CHUNKS)?;
            chunks.retain(|k, _| live.contains(&ChunkId(k)))?;
            for l in moved {
                chunks.insert(&l.entry.id.0, &encode_location(&l.pack, &l.entry))?;
            }
            let mut packs = tx.open_table(PACKS)?;
            for p in gone {
                packs.remove(&p.0)?;
            }
            for (p, size, count) in added {
                packs.insert(&p.0, &(*size, *count))?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Removes chunk rows (rows that could not be decoded, found by a rebuild).
    pub fn remove_chunks(&self, ids: &[ChunkId]) -> Result<()> {
        let tx = self.db()?.begin_write()?;
        {
            let mut chunks = tx.open_table(CHUNKS)?;
            for id in ids {
                chunks.remove(&id.0)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Compacts the file: redb keeps the pages its copy-on-write commits
    /// freed, and compaction moves the live pages to the front and truncates
    /// (140 MB to 48 MB in 0.2 s for 400,000 rows). No read transaction may
    /// be open. The index is a cache: an interrupted compaction loses nothing
    /// a rebuild cannot restore, and redb's own commits keep it consistent.
    pub fn compact(&mut self) -> Result<()> {
        if let Db::Write(db) = &mut self.db {
            // Pages the first pass frees become movable only after it commits.
            for _ in 0..3 {
                if !db.compact()? {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Ids of the packs the index names.
    pub fn pack_ids(&self) -> Result<std::collections::HashSet<PackId>> {
        Ok(self.packs()?.into_iter().map(|(p, _)| p).collect())
    }

    pub fn remove_snapshot(&self, id: &SnapshotId) -> Result<()> {
        let tx = self.db()?.begin_write()?;
        tx.open_table(SNAPSHOTS)?.remove(&id.0)?;
        tx.commit()?;
        Ok(())
    }

    pub fn packs(&self) -> Result<Vec<(PackId, u64)>> {
        let tx = self.begin_read()?;
        let t = tx.open_table(PACKS)?;
        t.iter()?
            .map(|r| {
                let (k, v) = r?;
                Ok((PackId(k.value()), v.value().0))
            })
            .collect()
    }

    pub fn add_snapshot(&self, id: &SnapshotId, time: i64) -> Result<()> {
        let tx = self.db()?.begin_write()?;
        tx.open_table(SNAPSHOTS)?.insert(&id.0, &time)?;
        tx.commit()?;
        Ok(())
    }

    pub fn catalog(&self) -> Result<Vec<SnapshotId>> {
        let tx = self.begin_read()?;
        let t = tx.open_table(SNAPSHOTS)?;
        t.iter()?.map(|r| Ok(SnapshotId(r?.0.value()))).collect()
    }
}

/// A consistent read view of the chunk table.
pub struct IndexReader {
    chunks: redb::ReadOnlyTable<[u8; 32], [u8; 49]>,
}

impl IndexReader {
    pub fn get(&self, id: &ChunkId) -> Result<Option<Location>> {
        self.chunks
            .get(&id.0)?
            .map(|v| decode_location(*id, &v.value()))
            .transpose()
    }

    /// Every delta row, in chunk id order.
    pub fn delta_rows(&self) -> Result<Vec<Location>> {
        let mut out = Vec::new();
        for r in self.chunks.iter()? {
            let (k, v) = r?;
            let v = v.value();
            if v[48] == EntryKind::Delta as u8 {
                out.push(decode_location(ChunkId(k.value()), &v)?);
            }
        }
        Ok(out)
    }

    pub fn contains(&self, id: &ChunkId) -> Result<bool> {
        Ok(self.chunks.get(&id.0)?.is_some())
    }

    /// The chunk's location; a chunk a snapshot needs and the index lacks is
    /// damage to the store (exit 3), not bad input.
    pub fn locate(&self, id: &ChunkId) -> Result<Location> {
        self.get(id)?.ok_or_else(|| {
            Error::corrupt(
                format!("chunk {id}"),
                "it is missing from the store: no indexed pack holds it (`snap verify` names what is affected; `snap repair index` recovers it only if a pack still holds it)",
            )
        })
    }
}
