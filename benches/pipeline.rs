//! Throughput of the write path's stages on 64 MiB of mixed data (half
//! compressible text, half random): FastCDC, BLAKE3, zstd entry encoding, and
//! dedup with the packer's parallel compression into sealed packs.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use snap::format::entry::encode_entry;
use snap::store::{Access, Index, Store, StoreConfig};

fn mixed(n: usize) -> Vec<u8> {
    let mut x = 0x9e3779b97f4a7c15u64;
    let words = [
        &b"alpha "[..],
        b"beta ",
        b"gamma ",
        b"delta\n",
        b"snap ",
        b"store ",
    ];
    let mut v = Vec::with_capacity(n);
    while v.len() < n / 2 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(words[(x % 6) as usize]);
    }
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

fn stages(c: &mut Criterion) {
    let data = mixed(64 << 20);
    let params = StoreConfig::default().chunker;
    let chunks: Vec<Vec<u8>> = snap::chunker::file_chunks(&data[..], params)
        .map(|c| c.unwrap())
        .collect();
    let mut g = c.benchmark_group("write-path");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    g.bench_function("fastcdc", |b| {
        b.iter(|| snap::chunker::file_chunks(&data[..], params).count())
    });
    g.bench_function("blake3", |b| {
        b.iter(|| {
            chunks
                .iter()
                .map(|c| snap::ChunkId::of(c).0[0] as u64)
                .sum::<u64>()
        })
    });
    g.bench_function("zstd-3 one thread", |b| {
        b.iter(|| {
            chunks
                .iter()
                .map(|c| encode_entry(c, 3).1.len())
                .sum::<usize>()
        })
    });
    g.bench_function("dedup + packer (parallel zstd, fsync)", |b| {
        b.iter(|| {
            // A new store each time: every chunk is new to it.
            let dir = tempfile::tempdir().unwrap();
            let store = Store::init(dir.path().join("s"), StoreConfig::default()).unwrap();
            let wait = std::time::Duration::ZERO;
            let repo = store.repository(Access::Write, "bench", wait).unwrap();
            let mut w = snap::dedup::ChunkWriter::new(&repo).unwrap();
            for c in &chunks {
                w.put(c.clone()).unwrap();
            }
            w.finish().unwrap().added
        })
    });
    g.finish();
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("i.redb")).unwrap();
    let mut g = c.benchmark_group("index");
    g.sample_size(10);
    g.bench_function("add 10k chunks + 10k lookups", |b| {
        b.iter(|| {
            let entries: Vec<_> = (0..10_000u32)
                .map(|i| snap::format::pack::PackEntry {
                    kind: snap::format::pack::EntryKind::Zstd,
                    id: snap::ChunkId::of(&i.to_le_bytes()),
                    offset: i as u64 * 10,
                    length: 10,
                    raw_length: 10,
                })
                .collect();
            index
                .add_pack(&snap::PackId::of(b"p"), 1, &entries)
                .unwrap();
            let r = index.reader().unwrap();
            entries
                .iter()
                .filter(|e| r.contains(&e.id).unwrap())
                .count()
        })
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
