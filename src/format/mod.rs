//! Pure encode/decode of everything snap writes: packs, trees, snapshot records
//! and the store config. No I/O lives here; this is what the fuzz targets reach.

pub mod bundle;
pub mod entry;
pub mod fuzzing;
pub mod pack;
pub mod record;
pub mod tree;
pub mod units;
