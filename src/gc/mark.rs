//! mark: every chunk the kept snapshots need (tree chunks and content
//! chunks; the bases of deltas are added by the pack plan, from the pack
//! headers). Iterative, so no tree depth can overflow the stack; a subtree
//! whose chunk list was already walked is not walked again, so memory is one
//! set entry per live chunk whatever the number of snapshots.

use crate::error::Result;
use crate::format::tree::NodeKind;
use crate::id::ChunkId;
use crate::store::StoreReader;
use std::collections::HashSet;

/// Every chunk the given snapshots reach. Any tree that cannot be read is an
/// error: gc must not run on a partial mark.
pub fn mark<'s>(
    reader: &StoreReader,
    snapshots: impl Iterator<Item = &'s crate::Snapshot>,
) -> Result<HashSet<ChunkId>> {
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
                    NodeKind::Database(db) => {
                        live.extend(db.chunks.iter().copied());
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
