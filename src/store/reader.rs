//! StoreReader: chunks and trees by id, through the index and the packs.

use super::index::{Index, IndexReader};
use super::packs::PackReader;
use super::Store;
use crate::error::Result;
use crate::format::tree::{decode_tree, Tree};
use crate::id::ChunkId;

pub struct StoreReader<'a> {
    pub index: IndexReader,
    pub packs: PackReader<'a>,
}

impl<'a> StoreReader<'a> {
    pub fn new(store: &'a Store, index: &Index) -> Result<Self> {
        Ok(StoreReader {
            index: index.reader()?,
            packs: PackReader::new(store),
        })
    }

    /// The plain chunk, verified against its id.
    pub fn chunk(&self, id: &ChunkId) -> Result<Vec<u8>> {
        let loc = self.index.locate(id)?;
        self.packs.read(&loc)
    }

    pub fn tree(&self, ids: &[ChunkId]) -> Result<Tree> {
        let mut bytes = Vec::new();
        for id in ids {
            bytes.extend(self.chunk(id)?);
        }
        decode_tree(&bytes)
    }
}
