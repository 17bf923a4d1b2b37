//! StoreReader: chunks and trees by id, through the index and the packs.
//! Delta entries are decoded with their base, which is never itself a delta.

use super::index::{Index, IndexReader, Location};
use super::packs::{decode_named, PackReader};
use super::Store;
use crate::error::{Error, Result};
use crate::format::entry::delta_base;
use crate::format::pack::EntryKind;
use crate::format::tree::{decode_tree, Tree};
use crate::id::ChunkId;
use rayon::prelude::*;
use std::collections::HashMap;

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
        let stored = self.packs.read_stored(&loc)?;
        let base = match loc.entry.kind {
            EntryKind::Delta => Some(self.base(&loc, &stored)?),
            _ => None,
        };
        decode_named(&loc, &stored, base.as_deref())
    }

    /// A delta's base: located, read and verified; never a delta itself.
    fn base(&self, loc: &Location, stored: &[u8]) -> Result<Vec<u8>> {
        let id = delta_base(stored).ok_or_else(|| {
            Error::corrupt(format!("chunk {}", loc.entry.id), "delta without base")
        })?;
        let base = self.index.locate(&id)?;
        if base.entry.kind == EntryKind::Delta {
            return Err(Error::corrupt(
                format!("chunk {}", loc.entry.id),
                "delta base is itself a delta",
            ));
        }
        decode_named(&base, &self.packs.read_stored(&base)?, None)
    }

    /// Many chunks, in order, each verified; reads are coalesced and decoding
    /// runs on all cores.
    pub fn chunks(&self, locs: &[Location]) -> Vec<Result<Vec<u8>>> {
        let stored = self.packs.read_stored_many(locs);
        let mut bases: HashMap<ChunkId, Result<Vec<u8>>> = HashMap::new();
        for (loc, s) in locs.iter().zip(&stored) {
            if let (EntryKind::Delta, Ok(s)) = (loc.entry.kind, s) {
                if let Some(b) = delta_base(s) {
                    bases.entry(b).or_insert_with(|| self.base(loc, s));
                }
            }
        }
        locs.par_iter()
            .zip(stored.par_iter())
            .map(|(loc, s)| {
                let s = s.as_ref().map_err(Error::duplicate)?;
                let base = match loc.entry.kind {
                    EntryKind::Delta => {
                        let b = delta_base(s).and_then(|b| bases.get(&b));
                        Some(
                            b.expect("base fetched above")
                                .as_ref()
                                .map_err(Error::duplicate)?,
                        )
                    }
                    _ => None,
                };
                decode_named(loc, s, base.map(|b| b.as_slice()))
            })
            .collect()
    }

    pub fn tree(&self, ids: &[ChunkId]) -> Result<Tree> {
        let mut bytes = Vec::new();
        for id in ids {
            bytes.extend(self.chunk(id)?);
        }
        decode_tree(&bytes)
    }
}
