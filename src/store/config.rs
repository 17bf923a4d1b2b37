//! A store's `config` file: its format, id, chunker parameters, pack size
//! and zstd level (DESIGN.md, "Store layout").

use serde::{Deserialize, Serialize};

/// The store format this snap writes. Format 2 lets a delta's base be a
/// delta itself (DESIGN.md, "Delta chains"); format 3 stores a database's
/// unit list as chunks of its own (DESIGN.md, "Unit lists"); format 4 lets
/// a delta name several bases (`EntryKind::Deltas`). An older store
/// is read as it is and takes this format at its first `take`, after which
/// an older snap refuses it with a clear message instead of misreading it.
pub const FORMAT_VERSION: u32 = 4;
/// The oldest store format this snap reads.
pub(super) const OLDEST_FORMAT: u32 = 1;

/// FastCDC parameters (bytes). See DESIGN.md "Parameters" for the measurements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreConfig {
    pub format: u32,
    pub store_id: String,
    /// Chunker for ordinary file content.
    pub chunker: ChunkerParams,
    /// Chunker for encoded trees (small, so a changed directory costs little).
    pub tree_chunker: ChunkerParams,
    /// A pack is sealed once its entries reach this many bytes.
    pub pack_size: u64,
    pub zstd_level: i32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            format: FORMAT_VERSION,
            store_id: hex::encode(&blake3::hash(&random_bytes()).as_bytes()[..16]),
            chunker: ChunkerParams {
                min: 16 << 10,
                avg: 64 << 10,
                max: 256 << 10,
            },
            tree_chunker: ChunkerParams {
                min: 4 << 10,
                avg: 16 << 10,
                max: 64 << 10,
            },
            pack_size: 32 << 20,
            zstd_level: 3,
        }
    }
}

fn random_bytes() -> Vec<u8> {
    // A store id only needs to be unique, not secret: time, pid and an address.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let local = 0u8;
    format!("{t:?}{}{:p}", std::process::id(), &local).into_bytes()
}
