//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the test that
//! replays their corpora (`tests/fuzz_corpus.rs`). Each asserts the decoder's
//! contract on arbitrary input; a panic here is a bug.

use crate::format::{pack, tree};

pub fn pack(data: &[u8]) {
    // Past the checksum too: the input (after 8 bytes of data length) as a
    // header whose checksum is right, so the record validation is reached.
    if data.len() >= 8 {
        let data_len = u64::from_le_bytes(data[..8].try_into().expect("8 bytes")) % (1 << 40);
        let header = &data[8..];
        let sum: [u8; 16] = blake3::hash(header).as_bytes()[..16]
            .try_into()
            .expect("16 bytes");
        if let Ok(entries) = pack::decode_header(header, &sum, data_len) {
            let end = entries.last().map_or(0, |e| e.offset + e.length as u64);
            assert_eq!(end, data_len);
        }
    }
    if let Ok(entries) = pack::decode_pack(data) {
        let data_len: u64 = entries.iter().map(|e| e.length as u64).sum();
        assert!(data_len <= data.len() as u64);
        for e in &entries {
            let stored = &data[e.offset as usize..(e.offset + e.length as u64) as usize];
            if let Ok(plain) = crate::format::entry::decode_entry(e, stored, None) {
                assert_eq!(crate::ChunkId::of(&plain), e.id);
            }
        }
    }
}

pub fn tree(data: &[u8]) {
    if let Ok(t) = tree::decode_tree(data) {
        for n in &t.nodes {
            assert!(tree::check_name(&n.name).is_ok());
        }
        assert_eq!(tree::decode_tree(&tree::encode_tree(&t)).ok(), Some(t));
    }
}

pub fn index_rebuild(data: &[u8]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = crate::Store::init(dir.path().join("s"), Default::default()).expect("init");
    store.put_pack(data).expect("write");
    let _lock = store.lock("fuzz", std::time::Duration::ZERO).expect("lock");
    let report =
        crate::store::packs::rebuild_index(&store).expect("rebuild never fails on bad packs");
    let valid = pack::decode_pack(data).is_ok();
    assert_eq!(report.packs, valid as u64);
    assert_eq!(report.bad_packs.len(), (!valid) as usize);
}
