use super::*;
use proptest::prelude::*;

proptest! {
    #[test]
    fn delta_round_trip(base in prop::collection::vec(0u8..8, 1..5000), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..20)) {
        let mut page = base.clone();
        for (i, b) in edits {
            let i = i.index(page.len());
            page[i] = b;
        }
        let id = ChunkId::of(&page);
        let base_id = ChunkId::of(&base);
        let (kind, stored) = encode_with_base(&page, &base_id, &base, DELTA_LEVEL, 3);
        let entry = PackEntry { kind, id, offset: 0, length: stored.len() as u32, raw_length: page.len() as u32 };
        if kind == EntryKind::Delta {
            prop_assert_eq!(delta_base(&stored), Some(base_id));
            prop_assert!(decode_entry(&entry, &stored, None).is_err());
            let wrong: Vec<u8> = base.iter().map(|b| b ^ 1).collect();
            prop_assert!(decode_entry(&entry, &stored, Some(&wrong)).is_err());
        }
        prop_assert_eq!(decode_entry(&entry, &stored, Some(&base)).unwrap(), page.clone());
        // A delta is only ever chosen when under a quarter of the plain
        // chunk or smaller than the chunk alone.
        if kind == EntryKind::Delta {
            prop_assert!(stored.len() * 4 < page.len() || stored.len() < encode_entry(&page, 3).1.len());
            prop_assert!(page.iter().any(|b| *b != 0));
        }
    }
}

proptest! {
    // A delta against several bases decodes with exactly their bytes,
    // concatenated in the entry's order, and names them in that order.
    #[test]
    fn deltas_round_trip(parts in prop::collection::vec(prop::collection::vec(any::<u8>(), 100..3000), 2..MAX_BASES + 1), flip in any::<prop::sample::Index>()) {
        let ids: Vec<ChunkId> = parts.iter().map(|p| ChunkId::of(p)).collect();
        let prefix: Vec<u8> = parts.concat();
        // The new chunk takes a piece of every base, out of order.
        let plain: Vec<u8> = parts.iter().rev().flat_map(|p| p[..p.len() / 2].to_vec()).collect();
        let (kind, stored) = encode_with_bases(&plain, &ids, &prefix, DELTA_LEVEL).unwrap();
        prop_assert_eq!(kind, EntryKind::Deltas);
        prop_assert_eq!(bases_of(kind, &stored), Some(ids.clone()));
        let entry = PackEntry { kind, id: ChunkId::of(&plain), offset: 0, length: stored.len() as u32, raw_length: plain.len() as u32 };
        prop_assert_eq!(decode_entry(&entry, &stored, Some(&prefix)).unwrap(), plain.clone());
        let mut wrong = prefix.clone();
        let i = flip.index(wrong.len());
        wrong[i] ^= 1;
        // A wrong base byte is caught (the content check), unless zstd
        // did not use it.
        if let Ok(p) = decode_entry(&entry, &stored, Some(&wrong)) {
            prop_assert_eq!(p, plain);
        }
        let swapped: Vec<u8> = parts.iter().rev().flatten().copied().collect();
        if swapped != prefix {
            prop_assert!(decode_entry(&entry, &stored, Some(&swapped)).is_err());
        }
    }
}

#[test]
fn a_malformed_list_of_bases_is_damage() {
    assert_eq!(bases_of(EntryKind::Deltas, &[1u8; 40]), None);
    assert_eq!(bases_of(EntryKind::Deltas, &[9u8; 400]), None);
    assert_eq!(bases_of(EntryKind::Deltas, &[2u8; 40]), None);
    assert_eq!(bases_of(EntryKind::Zstd, &[2u8; 40]), Some(vec![]));
}

// Issue 9, defect 4: a zero page was stored as a 50-byte delta although
// it compresses alone to 19 bytes, making it depend on a base it did not need.
#[test]
fn a_zero_page_is_never_a_delta() {
    let base: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    let zero = vec![0u8; 4096];
    let (kind, _) = encode_with_base(&zero, &ChunkId::of(&base), &base, DELTA_LEVEL, 3);
    assert_ne!(kind, EntryKind::Delta);
}

/// A point's unit far from its chain's root is stored whole (a new
/// root), where `encode_with_base` would keep a delta under a quarter
/// of the plain bytes; near the root it stays a delta.
#[test]
fn a_drifted_unit_against_an_old_root_is_stored_whole() {
    let mut rng = 7u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // Rows of text: compresses alone to a few KiB.
    let base: Vec<u8> = (0..2000)
        .flat_map(|i| format!("row {i:08} name package-{i} v1.{}.0\n", i % 7).into_bytes())
        .take(65536)
        .collect();
    let mut near = base.clone();
    near[100..140].copy_from_slice(&[b'z'; 40]);
    let mut far = base.clone();
    for _ in 0..3000 {
        let i = next() as usize % far.len();
        far[i] = b"ABCDEFG"[next() as usize % 7];
    }
    let id = ChunkId::of(&base);
    let (kind, _) = encode_refreshing(&near, &id, &base, DELTA_LEVEL, 3);
    assert_eq!(kind, EntryKind::Delta);
    let (kind, stored) = encode_refreshing(&far, &id, &base, DELTA_LEVEL, 3);
    assert_ne!(kind, EntryKind::Delta);
    assert_eq!(stored, encode_entry(&far, 3).1);
    // The rule for takes keeps that delta.
    assert_eq!(
        encode_with_base(&far, &id, &base, DELTA_LEVEL, 3).0,
        EntryKind::Delta
    );
}
