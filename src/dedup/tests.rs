use super::*;
use crate::format::entry::MAX_CHAIN;
use crate::store::reader::resolve;
use crate::store::Access;
use crate::StoreConfig;
use std::time::Duration;

fn writing(store: &Store) -> Repository {
    store
        .repository(Access::Write, "test", Duration::ZERO)
        .unwrap()
}

fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(dir.path(), StoreConfig::default()).unwrap();
    (dir, store)
}

// A unit that changes a little every day: each version is a delta
// against the one before until the chain is `MAX_CHAIN` long, then
// against the chain's root, and every version decodes to its bytes.
#[test]
fn chains_grow_to_max_chain_then_start_again_from_the_root() {
    let (_dir, store) = new_store();
    let mut repo = writing(&store);
    let mut unit: Vec<u8> = (0..65_536u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (mut parent, mut versions) = (None, Vec::new());
    for day in 0..2 * MAX_CHAIN + 2 {
        unit[day * 1000] ^= 0xff;
        let mut w = ChunkWriter::new(&repo).unwrap();
        let id = w.put_with_base(unit.clone(), parent).unwrap();
        w.finish().unwrap();
        drop(w);
        repo.refresh().unwrap();
        let loc = repo.index.locate(&id).unwrap();
        let (plain, depth) = resolve(&repo.index, &repo.packs, &loc).unwrap();
        assert_eq!(plain, unit);
        let want = if day == 0 {
            0
        } else {
            (day - 1) % MAX_CHAIN + 1
        };
        assert_eq!(depth, want, "day {day}");
        (parent, versions) = (Some(id), [versions, vec![(id, unit.clone())]].concat());
    }
    for (id, bytes) in versions {
        assert_eq!(repo.chunk(&id).unwrap(), bytes);
    }
}

// A damaged link in the middle of a chain: reading the newest version
// fails (never wrong bytes) and the error names the damaged chunk.
#[test]
fn a_damaged_link_is_named() {
    use std::os::unix::fs::FileExt;
    let (_dir, store) = new_store();
    let mut repo = writing(&store);
    let mut unit: Vec<u8> = (0..65_536u32)
        .map(|i| (i % 251) as u8 ^ (i >> 9) as u8)
        .collect();
    let mut ids = Vec::new();
    for day in 0..3 {
        unit[day * 100 + 7] ^= 0x55;
        let mut w = ChunkWriter::new(&repo).unwrap();
        ids.push(w.put_with_base(unit.clone(), ids.last().copied()).unwrap());
        w.finish().unwrap();
    }
    repo.refresh().unwrap();
    let reader = &repo;
    let mid = reader.index.locate(&ids[1]).unwrap();
    assert_eq!(mid.entry.kind, crate::format::pack::EntryKind::Delta);
    let path = store.pack_path(&mid.pack);
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&path, perms).unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .open(&path)
        .unwrap();
    let at = mid.entry.offset + mid.entry.length as u64 - 2;
    let mut b = [0u8; 1];
    file.read_exact_at(&mut b, at).unwrap();
    file.write_all_at(&[b[0] ^ 0x10], at).unwrap();
    let err = reader.chunk(&ids[2]).unwrap_err().to_string();
    assert!(err.contains(&ids[1].to_string()), "{err}");
    let batch = reader.chunks(&[reader.index.locate(&ids[2]).unwrap()]);
    let err = batch[0].as_ref().unwrap_err().to_string();
    assert!(err.contains(&ids[1].to_string()), "{err}");
}

// A store whose index an older snap wrote (layout 1, found by its
// `chunks` table) is rebuilt by the next writer, and its chunks are found.
#[test]
fn an_older_index_is_rebuilt_on_open() {
    let (_dir, store) = new_store();
    let repo = writing(&store);
    let mut w = ChunkWriter::new(&repo).unwrap();
    let id = w.put(b"kept across the migration".to_vec()).unwrap();
    w.finish().unwrap();
    drop(w);
    drop(repo);
    let db = redb::Database::open(store.index_path()).unwrap();
    let tx = db.begin_write().unwrap();
    let old: redb::TableDefinition<[u8; 32], [u8; 49]> = redb::TableDefinition::new("chunks");
    tx.open_table(old).unwrap();
    tx.commit().unwrap();
    drop(db);
    let repo = writing(&store);
    assert_eq!(repo.chunk(&id).unwrap(), b"kept across the migration");
}

// A file's content is read at any offset through its extents: every range,
// across chunk boundaries and past the end, gives the bytes written.
#[test]
fn content_is_read_at_any_offset() {
    let (_dir, store) = new_store();
    let mut repo = writing(&store);
    let parts: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 1000 + i as usize * 7]).collect();
    let mut w = ChunkWriter::new(&repo).unwrap();
    let chunks: Vec<ChunkId> = parts.iter().map(|p| w.put(p.clone()).unwrap()).collect();
    w.finish().unwrap();
    drop(w);
    repo.refresh().unwrap();
    let whole: Vec<u8> = parts.concat();
    let kind = crate::format::tree::NodeKind::File { chunks };
    let ext = repo.extents(&kind, whole.len() as u64).unwrap();
    assert_eq!(ext.size(), whole.len() as u64);
    for (at, len) in [
        (0, 10),
        (995, 20),
        (1000, 1007),
        (0, 99_999),
        (5000, 100),
        (99_999, 1),
    ] {
        let got = repo.read_at(&ext, at, len).unwrap();
        let from = (at as usize).min(whole.len());
        let to = (at + len).min(whole.len() as u64) as usize;
        assert_eq!(got, whole[from..to.max(from)], "at {at} len {len}");
    }
    assert!(repo.extents(&kind, whole.len() as u64 + 1).is_err());
}

// Content that moved (an FTS merge writing old segments' content into a
// freed page): a unit rewritten with pieces of three other units is stored
// as a delta against its previous version and those units, reads back
// through the index and after an index rebuild, and a gc's view of it
// (`bases_of`) names all four bases.
#[test]
fn moved_content_is_stored_against_the_units_it_came_from() {
    use crate::format::entry::{bases_of, DELTA_LEVEL};
    use crate::format::pack::EntryKind;
    use crate::store::Levels;
    let (_dir, store) = new_store();
    let mut repo = store
        .repository(Access::Exclusive, "test", Duration::ZERO)
        .unwrap();
    let noise = |seed: u32| -> Vec<u8> {
        (0..65_536u32)
            .map(|i| ((i ^ seed.wrapping_mul(0x9e37_79b9)).wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect()
    };
    let olds: Vec<Vec<u8>> = (1..=4).map(noise).collect();
    let levels = Levels {
        full: 3,
        delta: DELTA_LEVEL,
        refresh: true,
        similar: true,
        chain: MAX_CHAIN,
    };
    let mut w = ChunkWriter::new(&repo).unwrap();
    let ids: Vec<ChunkId> = olds
        .iter()
        .map(|u| {
            w.put_hashed(ChunkId::of(u), u.clone(), None, levels)
                .unwrap()
        })
        .collect();
    w.finish().unwrap();
    drop(w);
    repo.refresh().unwrap();
    let moved = [
        &olds[3][..16_384],
        &olds[1][16_384..32_768],
        &olds[2][..16_384],
        &olds[1][..16_384],
    ]
    .concat();
    let mut w = ChunkWriter::new(&repo).unwrap();
    w.expect_bases(&ids, 65_536, MAX_CHAIN);
    let id = w
        .put_hashed(ChunkId::of(&moved), moved.clone(), Some(ids[0]), levels)
        .unwrap();
    let stats = w.finish().unwrap();
    drop(w);
    repo.refresh().unwrap();
    let loc = repo.index.locate(&id).unwrap();
    assert_eq!(loc.entry.kind, EntryKind::Deltas);
    assert!(stats.added < 4096, "stored {} bytes", stats.added);
    let stored = repo.packs.read_stored(&loc).unwrap();
    let mut named = bases_of(loc.entry.kind, &stored).unwrap();
    named.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(named, want);
    assert_eq!(repo.chunk(&id).unwrap(), moved);
    let (plain, depth) = resolve(&repo.index, &repo.packs, &loc).unwrap();
    assert_eq!((plain, depth), (moved.clone(), 1));
    let report = repo.rebuild_index().unwrap();
    assert_eq!(report.undecodable, 0);
    repo.refresh().unwrap();
    assert_eq!(repo.chunk(&id).unwrap(), moved);
}
