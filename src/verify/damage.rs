//! Which snapshots and files a damaged pack hurts: the chunks of the pack
//! that fail their check (every chunk the index places there when the pack
//! cannot be read or its header decoded), every chunk stored as a delta
//! whose chain of bases reaches one of those, and then every file, database
//! and directory of every snapshot checked that uses one. Only run when a
//! pack failed, so its extra reads cost nothing in the common case.

use crate::format::entry::bases_of;
use crate::format::pack::decode_pack;
use crate::format::tree::NodeKind;
use crate::id::{ChunkId, PackId, SnapshotId};
use crate::store::index::Location;
use crate::store::packs::decode_named;
use crate::store::reader::dictionary;
use crate::store::{Store, StoreReader};
use std::collections::{HashMap, HashSet};

/// The chunks of `pack` that cannot be read back intact.
pub(super) fn damaged_chunks(store: &Store, reader: &StoreReader, pack: &PackId) -> Vec<ChunkId> {
    let all = || reader.index.chunks_in(pack).unwrap_or_default();
    let Some(bytes) = store.local_pack(pack) else {
        return all();
    };
    let Ok(entries) = decode_pack(&bytes) else {
        return all();
    };
    let mut bad = Vec::new();
    for entry in entries {
        let loc = Location { pack: *pack, entry };
        let (start, len) = (loc.entry.offset as usize, loc.entry.length as usize);
        let Some(stored) = bytes.get(start..start + len) else {
            bad.push(loc.entry.id);
            continue;
        };
        let Some(ids) = bases_of(loc.entry.kind, stored) else {
            bad.push(loc.entry.id);
            continue;
        };
        // A base that cannot be read is the base's damage, found (and
        // followed to this chunk) on its own.
        let Ok(plains) = ids
            .iter()
            .map(|b| reader.chunk(b).map(|p| (*b, p)))
            .collect::<crate::Result<HashMap<_, _>>>()
        else {
            continue;
        };
        let decoded = dictionary(&loc, &ids, |b| plains.get(b))
            .and_then(|dict| decode_named(&loc, stored, dict.as_deref()));
        if decoded.is_err() {
            bad.push(loc.entry.id);
        }
    }
    bad
}

/// `bad` with every chunk stored as a delta whose chain reaches one of it.
pub(super) fn with_dependents(reader: &StoreReader, mut bad: HashSet<ChunkId>) -> HashSet<ChunkId> {
    let mut base_of: HashMap<ChunkId, Vec<ChunkId>> = HashMap::new();
    for loc in reader.index.delta_rows().unwrap_or_default() {
        if let Some(b) = reader
            .packs
            .read_stored(&loc)
            .ok()
            .and_then(|s| bases_of(loc.entry.kind, &s))
        {
            base_of.insert(loc.entry.id, b);
        }
    }
    loop {
        let more: Vec<ChunkId> = base_of
            .iter()
            .filter(|(c, b)| b.iter().any(|b| bad.contains(b)) && !bad.contains(c))
            .map(|(c, _)| *c)
            .collect();
        if more.is_empty() {
            return bad;
        }
        bad.extend(more);
    }
}

/// Every (snapshot, path, chunk) among `snapshots` that uses a chunk in `bad`.
pub(super) fn users(
    reader: &StoreReader,
    snapshots: &[(SnapshotId, crate::Snapshot)],
    bad: &HashSet<ChunkId>,
) -> Vec<(SnapshotId, String, ChunkId)> {
    let mut out = Vec::new();
    for (id, snap) in snapshots {
        let hit = |chunks: &[ChunkId]| chunks.iter().find(|c| bad.contains(c)).copied();
        if let Some(c) = hit(&snap.tree) {
            out.push((*id, "(top tree)".to_string(), c));
            continue;
        }
        let Ok(top) = reader.tree(&snap.tree) else {
            continue;
        };
        let mut found = Vec::new();
        let _ = reader.walk(
            "",
            top.nodes,
            |path, node| {
                let c = match &node.kind {
                    NodeKind::File { chunks } => hit(chunks),
                    NodeKind::Dir { tree } => hit(tree),
                    NodeKind::Symlink { .. } => None,
                    NodeKind::Database(_) | NodeKind::ListedDatabase(_) => {
                        let (_, list) = node.kind.database().expect("a database node");
                        hit(list.chunks()).or_else(|| {
                            reader
                                .units(list)
                                .map_while(|u| u.ok())
                                .find(|u| bad.contains(u))
                        })
                    }
                };
                if let Some(c) = c {
                    found.push((path.to_string(), c));
                }
                Ok(c.is_none())
            },
            |_, _| Ok(()),
        );
        out.extend(found.into_iter().map(|(p, c)| (*id, p, c)));
    }
    out
}
