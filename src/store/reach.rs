//! Reach (gc's mark): every chunk some snapshots need (tree chunks, content chunks,
//! and a listed database's list chunks and units; the bases of deltas are added by the pack plan, from the pack
//! headers). Iterative, so no tree depth can overflow the stack; a subtree
//! whose chunk list was already walked is not walked again, so memory is one
//! set entry per live chunk whatever the number of snapshots.

use super::StoreReader;
use crate::error::Result;
use crate::format::tree::NodeKind;
use crate::id::ChunkId;
use std::collections::HashSet;

impl StoreReader {
    /// Every chunk the given snapshots reach. Any tree that cannot be read is an
    /// error: gc must not run on a partial mark.
    pub fn reachable<'s>(
        &self,
        snapshots: impl Iterator<Item = &'s crate::format::record::Snapshot>,
    ) -> Result<HashSet<ChunkId>> {
        let reader = self;
        let mut live = HashSet::new();
        let mut walked = HashSet::new();
        for s in snapshots {
            live.extend(s.tree.iter().copied());
            let top = reader.tree(&s.tree)?.nodes;
            reader.walk(
                "",
                top,
                |_, node| {
                    Ok(match &node.kind {
                        NodeKind::File { chunks } => {
                            live.extend(chunks.iter().copied());
                            false
                        }
                        NodeKind::Database(_) | NodeKind::ListedDatabase(_) => {
                            let (_, list) = node.kind.database().expect("a database node");
                            live.extend(list.chunks().iter().copied());
                            // A listed image's units, its list read (any list
                            // chunk that cannot be read fails the mark); a list
                            // already walked names the same units.
                            if list.is_listed() && walked.insert(ChunkId::of_list(list.chunks())) {
                                for unit in reader.units(list) {
                                    live.insert(unit?);
                                }
                            }
                            false
                        }
                        NodeKind::Symlink { .. } => false,
                        NodeKind::Dir { tree } => {
                            live.extend(tree.iter().copied());
                            let key = ChunkId::of_list(tree);
                            walked.insert(key)
                        }
                    })
                },
                |_, e| Err(e),
            )?;
        }
        Ok(live)
    }
}
