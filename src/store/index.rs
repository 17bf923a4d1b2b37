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

fn decode_location(id: ChunkId, v: &[u8; 49]) -> Location {
    Location {
        pack: PackId(v[..32].try_into().unwrap()),
        entry: PackEntry {
            kind: EntryKind::from_u8(v[48]).unwrap_or(EntryKind::Zstd),
            id,
            offset: u64::from_le_bytes(v[32..40].try_into().unwrap()),
            length: u32::from_le_bytes(v[40..44].try_into().unwrap()),
            raw_length: u32::from_le_bytes(v[44..48].try_into().unwrap()),
        },
    }
}

pub struct Index {
    db: Database,
}

impl Index {
    /// Opens (or creates) the index file. The caller holds the store lock.
    pub fn open(path: &Path) -> Result<Index> {
        let db = Database::builder()
            // Bounded memory: the cache does not grow with the store.
            .set_cache_size(32 << 20)
            .create(path)?;
        let tx = db.begin_write()?;
        tx.open_table(CHUNKS)?;
        tx.open_table(PACKS)?;
        tx.open_table(SNAPSHOTS)?;
        tx.commit()?;
        Ok(Index { db })
    }

    pub fn reader(&self) -> Result<IndexReader> {
        let tx = self.db.begin_read()?;
        Ok(IndexReader {
            chunks: tx.open_table(CHUNKS)?,
        })
    }

    /// Records a sealed, durable pack and all its entries in one commit.
    /// An id already present keeps its first location.
    pub fn add_pack(&self, pack: &PackId, size: u64, entries: &[PackEntry]) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut chunks = tx.open_table(CHUNKS)?;
            for e in entries {
                if chunks.get(&e.id.0)?.is_none() {
                    chunks.insert(&e.id.0, &encode_location(pack, e))?;
                }
            }
            tx.open_table(PACKS)?
                .insert(&pack.0, &(size, entries.len() as u32))?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Points the given entries at `pack` (gc's repack), replacing where they
    /// were; the pack is durable before this is called.
    pub fn relocate(&self, pack: &PackId, size: u64, entries: &[PackEntry]) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut chunks = tx.open_table(CHUNKS)?;
            for e in entries {
                chunks.insert(&e.id.0, &encode_location(pack, e))?;
            }
            tx.open_table(PACKS)?
                .insert(&pack.0, &(size, entries.len() as u32))?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Forgets packs: their rows, and every chunk row that still points into
    /// one of them. Committed before the pack files are deleted.
    pub fn drop_packs(&self, packs: &[(PackId, Vec<crate::id::ChunkId>)]) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut chunks = tx.open_table(CHUNKS)?;
            let mut pack_table = tx.open_table(PACKS)?;
            for (pack, ids) in packs {
                for id in ids {
                    let here = chunks
                        .get(&id.0)?
                        .is_some_and(|v| v.value()[..32] == pack.0);
                    if here {
                        chunks.remove(&id.0)?;
                    }
                }
                pack_table.remove(&pack.0)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn remove_snapshot(&self, id: &SnapshotId) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(SNAPSHOTS)?.remove(&id.0)?;
        tx.commit()?;
        Ok(())
    }

    pub fn packs(&self) -> Result<Vec<(PackId, u64)>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(PACKS)?;
        t.iter()?
            .map(|r| {
                let (k, v) = r?;
                Ok((PackId(k.value()), v.value().0))
            })
            .collect()
    }

    pub fn add_snapshot(&self, id: &SnapshotId, time: i64) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(SNAPSHOTS)?.insert(&id.0, &time)?;
        tx.commit()?;
        Ok(())
    }

    pub fn catalog(&self) -> Result<Vec<SnapshotId>> {
        let tx = self.db.begin_read()?;
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
        Ok(self
            .chunks
            .get(&id.0)?
            .map(|v| decode_location(*id, &v.value())))
    }

    pub fn contains(&self, id: &ChunkId) -> Result<bool> {
        Ok(self.chunks.get(&id.0)?.is_some())
    }

    pub fn locate(&self, id: &ChunkId) -> Result<Location> {
        self.get(id)?.ok_or_else(|| {
            Error::NotFound(format!(
                "chunk {id} is not in the index (run `snap verify`; `snap repair index` rebuilds it from the packs)"
            ))
        })
    }
}
