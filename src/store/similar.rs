//! Similar bases: a database unit whose content moved (rows appended, an
//! FTS index's segments merged into pages freed elsewhere) has no previous
//! version at its place that holds that content, but the previous versions
//! of other units of the same write did. They form a pool, indexed by
//! their 32-byte blocks; a unit whose delta against its own base is large
//! is looked up at every offset, and the pool's bases it shares the most
//! blocks with become the extra bases of a `Deltas` entry (DESIGN.md,
//! "Delta chains").
//!
//! Invariants: every base in a pool is indexed and durable (it came from
//! `StoreReader::delta_base`), has a depth below the chain's limit plus
//! `EXTRA_DEPTH`, so a delta against it stays within that; the chunks one new delta needs
//! (its bases and theirs, itself included) stay within `MAX_NEEDS`.

use super::chain::Base;
use super::packer::NewChunk;
use crate::format::entry::{self, EXTRA_DEPTH, MAX_BASES};
use crate::format::pack::EntryKind;
use crate::id::ChunkId;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, OnceLock};

/// Bytes a block: long enough that a shared block is shared content, short
/// enough to find the short runs an FTS merge copies (`scripts/multi_base.py`).
const BLOCK: usize = 32;
/// Blocks a base must share with the unit to be worth a place in its
/// dictionary.
const MIN_HITS: u32 = 4;
/// Chunks a delta with extra bases may need, itself included: a reader
/// reads at most this many entries for one unit (the previous version's
/// chain alone needs up to `MAX_CHAIN + 1`).
pub(crate) const MAX_NEEDS: usize = 32;
/// A delta against the unit's own base at most this fraction of the unit
/// is kept without a look for other bases (row updates: a few hundred
/// bytes).
const SMALL: usize = 16;
/// Bytes of a unit looked at first: without a block of the pool there, the
/// unit is not compared further.
const PROBE: usize = 8 << 10;
/// Multiplier of the polynomial rolling hash (odd).
const MUL: u64 = 0x100_0000_01b3;

/// The previous versions of the units of one write, looked up by content.
pub(crate) struct Pool {
    bases: Vec<Arc<Base>>,
    /// The first owner of each block.
    blocks: OnceLock<Blocks>,
}

impl Pool {
    /// A pool of `bases` for chunks whose chains stop at `max_chain`
    /// deltas; the index of their blocks is built at the first look-up.
    pub(crate) fn new(bases: Vec<Arc<Base>>, max_chain: usize) -> Self {
        let mut seen = HashSet::new();
        let bases = bases
            .into_iter()
            .filter(|b| b.depth < max_chain + EXTRA_DEPTH && seen.insert(b.id))
            .collect();
        Pool {
            bases,
            blocks: OnceLock::new(),
        }
    }

    fn blocks(&self) -> &Blocks {
        self.blocks.get_or_init(|| {
            let mut map = Blocks::default();
            for (i, b) in self.bases.iter().enumerate() {
                for block in b.plain.chunks_exact(BLOCK).filter(|c| !flat(c)) {
                    map.entry(hash(block)).or_insert(i as u32);
                }
            }
            map
        })
    }

    /// The bases of the pool `plain` shares the most blocks with, most
    /// first: up to `MAX_BASES` with `first` (the unit's own base, if
    /// any), and needing no more than `MAX_NEEDS` chunks with it.
    fn similar(&self, id: &ChunkId, plain: &[u8], first: Option<&Base>) -> Vec<Arc<Base>> {
        let (bases, blocks) = (&self.bases, self.blocks());
        // Content that came from nowhere (rows of new data) is the common
        // case of a large delta: a first look at the start turns it away.
        let mut hits = HashMap::new();
        let at = scan(plain, 0, PROBE, blocks, &mut hits);
        if hits.is_empty() {
            return Vec::new();
        }
        scan(plain, at, plain.len(), blocks, &mut hits);
        let mut ranked: Vec<(u32, u32)> =
            hits.into_iter().filter(|(_, n)| *n >= MIN_HITS).collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut needs: HashSet<ChunkId> = first
            .map(|f| f.needs.iter().copied().collect())
            .unwrap_or_default();
        needs.insert(*id);
        let room = MAX_BASES - usize::from(first.is_some());
        let mut out = Vec::new();
        for (i, _) in ranked {
            let b = &bases[i as usize];
            if out.len() == room {
                break;
            }
            let new = b.needs.iter().filter(|n| !needs.contains(n)).count();
            if b.id == *id || first.is_some_and(|f| f.id == b.id) {
                continue;
            }
            if needs.len() + new <= MAX_NEEDS {
                needs.extend(b.needs.iter().copied());
                out.push(b.clone());
            }
        }
        out
    }
}

/// Adds to `hits`, for each base of the pool, how many blocks of `plain`
/// starting in `from..to` it holds, each offset looked up (and past each
/// block found); returns where the next look starts.
fn scan(
    plain: &[u8],
    from: usize,
    to: usize,
    blocks: &Blocks,
    hits: &mut HashMap<u32, u32>,
) -> usize {
    let mut at = from;
    let mut h = plain.get(at..at + BLOCK).map(hash);
    while let Some(cur) = h.filter(|_| at < to) {
        h = match blocks.get(&cur) {
            Some(i) => {
                *hits.entry(*i).or_default() += 1;
                at += BLOCK;
                plain.get(at..at + BLOCK).map(hash)
            }
            None => {
                at += 1;
                plain
                    .get(at + BLOCK - 1)
                    .map(|b| roll(cur, plain[at - 1], *b))
            }
        };
    }
    at
}

/// The first owner of each block, by the block's rolling hash (mixed once
/// more, so that its low bits spread).
type Blocks = HashMap<u64, u32, BuildHasherDefault<Mixed>>;

#[derive(Default)]
struct Mixed(u64);

impl Hasher for Mixed {
    fn finish(&self) -> u64 {
        let h = (self.0 ^ (self.0 >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^ (h >> 32)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ *b as u64;
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// `single` (the unit stored alone or against its own base), or a delta
/// against its own base and the pool's most similar ones when that is
/// smaller. Small deltas are kept without a look.
pub(crate) fn improve(c: &NewChunk, single: (EntryKind, Vec<u8>)) -> (EntryKind, Vec<u8>) {
    let Some(pool) = c.pool.as_ref().filter(|_| !one_base()) else {
        return single;
    };
    if single.1.len() * SMALL <= c.plain.len() {
        return single;
    }
    let first = c.base.as_deref();
    let extra = pool.similar(&c.id, &c.plain, first);
    if extra.is_empty() {
        return single;
    }
    let bases: Vec<&Base> = first
        .into_iter()
        .chain(extra.iter().map(|b| &**b))
        .collect();
    let ids: Vec<ChunkId> = bases.iter().map(|b| b.id).collect();
    let prefix: Vec<u8> = bases.iter().flat_map(|b| b.plain.iter().copied()).collect();
    match entry::encode_with_bases(&c.plain, &ids, &prefix, c.levels.delta) {
        Some(multi) if multi.1.len() < single.1.len() => multi,
        _ => single,
    }
}

/// `SNAP_BENCH_ONE_BASE=1`: every delta against its own base alone, as
/// before format 4 (for the benchmarks and the test that measures the gain).
fn one_base() -> bool {
    static ONE: OnceLock<bool> = OnceLock::new();
    *ONE.get_or_init(|| std::env::var_os("SNAP_BENCH_ONE_BASE").is_some_and(|v| v == "1"))
}

/// A block of one repeated byte (a zeroed page's): shared by everything,
/// it says nothing of where content came from.
fn flat(block: &[u8]) -> bool {
    block.iter().all(|b| *b == block[0])
}

fn hash(block: &[u8]) -> u64 {
    block
        .iter()
        .fold(0u64, |h, b| h.wrapping_mul(MUL).wrapping_add(*b as u64))
}

/// The hash of the block one byte further: `out` leaves, `inb` enters.
fn roll(h: u64, out: u8, inb: u8) -> u64 {
    let top = MUL.wrapping_pow(BLOCK as u32 - 1);
    h.wrapping_sub((out as u64).wrapping_mul(top))
        .wrapping_mul(MUL)
        .wrapping_add(inb as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_matches_direct() {
        let data: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
        let mut h = hash(&data[..BLOCK]);
        for at in 1..data.len() - BLOCK {
            h = roll(h, data[at - 1], data[at + BLOCK - 1]);
            assert_eq!(h, hash(&data[at..at + BLOCK]));
        }
    }
}
