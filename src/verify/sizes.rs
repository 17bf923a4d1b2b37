//! What restore checks of sizes, checked by verify: a file's chunks add up
//! to its size, a database image's units to its pages.

use super::Checker;
use crate::format::units::UnitList;
use crate::id::{ChunkId, SnapshotId};

impl Checker<'_> {
    /// A file's chunks must add up to its size (restore refuses otherwise).
    pub(super) fn sizes(&mut self, snap: &SnapshotId, path: &str, chunks: &[ChunkId], size: u64) {
        let total: Option<u64> = chunks
            .iter()
            .map(|c| {
                let loc = self.reader.index.get(c).ok().flatten()?;
                Some(loc.entry.raw_length as u64)
            })
            .sum();
        if total.is_some_and(|t| t != size) {
            self.problem(
                Some(*snap),
                Some(path.into()),
                None,
                format!(
                    "its chunks hold {} bytes for a size of {size}: restore refuses it",
                    total.unwrap_or(0)
                ),
            );
        }
    }

    /// A database image's units must add up to its pages (restore refuses
    /// otherwise; an empty unit list holds no page).
    pub(super) fn image_size(&mut self, snap: &SnapshotId, path: &str, list: UnitList, size: u64) {
        if !self.sized.insert((ChunkId::of_list(list.chunks()), size)) {
            return;
        }
        let mut total = 0u64;
        for unit in self.reader.units(list) {
            let loc = unit.and_then(|u| self.reader.locate(&u));
            match loc {
                Ok(l) => total += l.entry.raw_length as u64,
                Err(_) => return, // named by the chunk checks
            }
        }
        if total != size {
            self.problem(
                Some(*snap),
                Some(path.into()),
                None,
                format!("its units hold {total} bytes for an image of {size}: restore refuses it"),
            );
        }
    }
}
