//! The index's layout: rows name packs by number, numbers are never reused,
//! and an index of the older layout is refused.

use super::*;

fn entry(n: u8, kind: EntryKind) -> PackEntry {
    PackEntry {
        kind,
        id: ChunkId([n; 32]),
        offset: 1000 * n as u64,
        length: 10 + n as u32,
        raw_length: 20 + n as u32,
    }
}

fn at(index: &Index, n: u8) -> Option<Location> {
    index.reader().unwrap().get(&ChunkId([n; 32])).unwrap()
}

// gc drops pack B (the last numbered) and writes pack C: C gets a new
// number, so no row that named B can ever name C.
#[test]
fn rows_name_their_pack_and_numbers_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("index.redb")).unwrap();
    let (a, b, c) = (PackId([1; 32]), PackId([2; 32]), PackId([3; 32]));
    index
        .add_pack(&a, 100, &[entry(1, EntryKind::Zstd)])
        .unwrap();
    index
        .add_pack(
            &b,
            200,
            &[entry(2, EntryKind::Raw), entry(3, EntryKind::Delta)],
        )
        .unwrap();
    assert_eq!(at(&index, 3).unwrap().pack, b);
    assert_eq!(at(&index, 3).unwrap().entry, entry(3, EntryKind::Delta));
    let live = [ChunkId([1; 32]), ChunkId([3; 32])].into_iter().collect();
    let moved = [Location {
        pack: c,
        entry: entry(3, EntryKind::Delta),
    }];
    index.apply_gc(&live, &moved, &[b], &[(c, 50, 1)]).unwrap();
    assert_eq!(at(&index, 1).unwrap().pack, a);
    assert_eq!(at(&index, 2), None);
    assert_eq!(at(&index, 3).unwrap().pack, c);
    assert_eq!(index.reader().unwrap().packs.get(&2), Some(&c));
    assert_eq!(index.reader().unwrap().packs.get(&1), None);
    let mut packs = index.packs().unwrap();
    packs.sort();
    assert_eq!(packs, vec![(a, 100), (c, 50)]);
    let deltas = index.reader().unwrap().delta_rows().unwrap();
    assert_eq!(deltas, moved.to_vec());
}

// A row whose pack number is unknown is reported corrupt, never guessed.
#[test]
fn a_row_naming_an_unknown_pack_is_corrupt() {
    let row = encode_row(7, &entry(1, EntryKind::Raw));
    let err = decode_row(ChunkId([1; 32]), &row, &HashMap::new()).unwrap_err();
    assert!(err.to_string().contains("unknown pack number 7"), "{err}");
}

// An index of layout 1 is refused by a writer (whose caller rebuilds
// it) and by a reader (which builds a private index instead).
#[test]
fn an_index_of_the_older_layout_is_refused() {
    const OLD: TableDefinition<[u8; 32], [u8; 49]> = TableDefinition::new("chunks");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.redb");
    let db = Database::create(&path).unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_table(OLD)
        .unwrap()
        .insert(&[1; 32], &[0; 49])
        .unwrap();
    tx.commit().unwrap();
    drop(db);
    assert!(matches!(Index::open(&path), Err(Error::Index(_))));
    assert!(Index::open_read_only(&path).is_err());
}
