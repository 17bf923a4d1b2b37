//! Reading a file or database image of a snapshot at any offset: where each
//! chunk starts (`Layout`, built when the file is opened), a cache of plain
//! chunks bounded in bytes, and read-ahead for sequential readers, so a
//! large file streams without being held whole.

use crate::error::{Error, Result};
use crate::format::tree::NodeKind;
use crate::id::ChunkId;
use crate::store::{Extents, StoreReader};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Plain bytes a sequential reader's next chunks are fetched in, at once
/// (coalesced reads, decoded on all cores).
pub(crate) const READ_AHEAD: u64 = 4 << 20;
/// Plain bytes the chunk cache holds at most (shared by all open files).
pub(crate) const CACHE_BYTES: usize = 16 << 20;

/// One file's content as the mount serves it: its extents in the store,
/// and whether it is a database image (served in rollback mode).
pub(crate) struct Layout {
    extents: Extents,
    /// A database image: served with WAL format bytes set to rollback
    /// mode (see `patch_header`).
    wal: bool,
}

impl Layout {
    /// The layout of a file or database node (no chunk is read but a
    /// database's unit list).
    pub fn new(reader: &StoreReader, kind: &NodeKind, size: u64) -> Result<Layout> {
        let wal = !matches!(kind, NodeKind::File { .. });
        let extents = reader.extents(kind, size)?;
        Ok(Layout { extents, wal })
    }

    pub fn size(&self) -> u64 {
        self.extents.size()
    }

    /// The end (exclusive) of the read-ahead window that starts at chunk `i`.
    fn window(&self, i: usize) -> usize {
        self.extents.window(i, READ_AHEAD)
    }
}

/// Plain chunks by id, the oldest dropped first past `CACHE_BYTES`.
#[derive(Default)]
pub(crate) struct Cache {
    map: HashMap<ChunkId, Arc<Vec<u8>>>,
    order: VecDeque<ChunkId>,
    bytes: usize,
}

impl Cache {
    fn get(&self, id: &ChunkId) -> Option<Arc<Vec<u8>>> {
        self.map.get(id).cloned()
    }

    fn put(&mut self, id: ChunkId, data: Arc<Vec<u8>>) {
        if self.map.contains_key(&id) {
            return;
        }
        self.bytes += data.len();
        self.map.insert(id, data);
        self.order.push_back(id);
        while self.bytes > CACHE_BYTES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(d) = self.map.remove(&old) {
                self.bytes -= d.len();
            }
        }
    }
}

/// What every open file reads through: the store and the chunk cache.
pub(crate) struct Shared {
    /// The store's shared lock, the index and the reader, for as long as
    /// the mount lasts.
    pub reader: crate::store::Repository,
    pub cache: Mutex<Cache>,
}

/// One open file.
pub(crate) struct Handle {
    layout: Layout,
    /// Where the last read ended: a read starting there is sequential.
    next: AtomicU64,
    /// Chunks before this one were fetched, or are being fetched, ahead.
    ahead: AtomicUsize,
    /// Held while this file's chunks are fetched, so two readers of it
    /// never fetch the same chunks twice.
    fetch: Mutex<()>,
}

impl Handle {
    pub fn new(layout: Layout) -> Handle {
        Handle {
            layout,
            next: AtomicU64::new(0),
            ahead: AtomicUsize::new(0),
            fetch: Mutex::new(()),
        }
    }
}

/// Up to `len` bytes of the content at `offset`. A read that continues the
/// last one fetches the next `READ_AHEAD` bytes of chunks with what it
/// needs, and starts fetching the window after that in the background
/// while the reader consumes this one; any other read fetches only the
/// chunks it needs.
pub(crate) fn read(
    shared: &Arc<Shared>,
    h: &Arc<Handle>,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>> {
    let layout = &h.layout;
    let ext = &layout.extents;
    let end = layout.size().min(offset.saturating_add(len));
    if offset >= end {
        return Ok(Vec::new());
    }
    let sequential = h.next.swap(end, Ordering::Relaxed) == offset;
    let mut out = Vec::with_capacity((end - offset) as usize);
    let mut i = ext.chunk_at(offset);
    while i < ext.len() && ext.start(i) < end {
        let data = chunk(shared, h, i, sequential)?;
        let start = ext.start(i);
        let from = offset.max(start) - start;
        let to = end.min(ext.end(i)) - start;
        out.extend_from_slice(&data[from as usize..to as usize]);
        i += 1;
    }
    if sequential {
        prefetch(shared, h, i);
    }
    if layout.wal {
        patch_header(&mut out, offset);
    }
    Ok(out)
}

/// Chunk `i`, from the cache or fetched (with the chunks after it that a
/// sequential reader will want next).
fn chunk(shared: &Shared, h: &Handle, i: usize, sequential: bool) -> Result<Arc<Vec<u8>>> {
    let id = h.layout.extents.id(i);
    if let Some(d) = shared.cache.lock().expect("cache").get(id) {
        return Ok(d);
    }
    let _fetching = h.fetch.lock().expect("fetch");
    if let Some(d) = shared.cache.lock().expect("cache").get(id) {
        return Ok(d);
    }
    let last = match sequential {
        true => h.layout.window(i),
        false => i + 1,
    };
    h.ahead.fetch_max(last, Ordering::Relaxed);
    fetch(shared, &h.layout, i..last)?;
    shared
        .cache
        .lock()
        .expect("cache")
        .get(id)
        .ok_or_else(|| Error::corrupt(format!("chunk {id}"), "it could not be read"))
}

/// Starts fetching the next window in the background once the reader is
/// within half a window of the chunks fetched so far. A background fetch
/// never waits for the file's fetch lock (a reader holding it may be
/// waiting for the pool this runs on): it gives way, and the reader
/// fetches what it needs itself.
fn prefetch(shared: &Arc<Shared>, h: &Arc<Handle>, at: usize) {
    let layout = &h.layout;
    let ext = &layout.extents;
    let ahead = h.ahead.load(Ordering::Relaxed);
    if ahead >= ext.len() || ext.start(ahead) > ext.start(at) + READ_AHEAD / 2 {
        return;
    }
    let end = layout.window(ahead);
    if h.ahead
        .compare_exchange(ahead, end, Ordering::Relaxed, Ordering::Relaxed)
        .is_err()
    {
        return; // another read claimed this window
    }
    let (shared, h) = (shared.clone(), h.clone());
    rayon::spawn(move || {
        if let Ok(_fetching) = h.fetch.try_lock() {
            // A failure here is met (and reported) by the read that needs it.
            let _ = fetch(&shared, &h.layout, ahead..end);
        }
    });
}

/// Fetches the chunks `range` of a file that the cache lacks, into it.
fn fetch(shared: &Shared, layout: &Layout, range: std::ops::Range<usize>) -> Result<()> {
    let missing: Vec<ChunkId> = {
        let cache = shared.cache.lock().expect("cache");
        layout
            .extents
            .ids(range)
            .iter()
            .filter(|id| cache.get(id).is_none())
            .copied()
            .collect()
    };
    let got = shared.reader.chunks_by_id(&missing)?;
    let mut cache = shared.cache.lock().expect("cache");
    for (id, data) in missing.into_iter().zip(got) {
        cache.put(id, Arc::new(data));
    }
    Ok(())
}

/// SQLite opens a database whose header says WAL (bytes 18 and 19 = 2) only
/// where it can open or create its `-wal` and `-shm` files, which a
/// read-only mount cannot offer; the image holds every committed page, so
/// it is served as a rollback-mode database (both bytes 1). Nothing else of
/// the image differs from what `snap dump` and `restore` write.
fn patch_header(out: &mut [u8], offset: u64) {
    for at in [18u64, 19] {
        if let Some(i) = at.checked_sub(offset).map(|i| i as usize) {
            if let Some(b) = out.get_mut(i).filter(|b| **b == 2) {
                *b = 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_patch_touches_only_bytes_18_and_19() {
        let mut page = vec![2u8; 100];
        patch_header(&mut page, 0);
        assert_eq!((page[17], page[18], page[19], page[20]), (2, 1, 1, 2));
        let mut tail = vec![2u8; 10];
        patch_header(&mut tail, 19);
        assert_eq!(tail[..2], [1, 2]);
        let mut later = vec![2u8; 10];
        patch_header(&mut later, 4096);
        assert!(later.iter().all(|b| *b == 2));
    }

    #[test]
    fn the_cache_holds_a_bounded_number_of_bytes() {
        let mut c = Cache::default();
        for i in 0..40u8 {
            c.put(ChunkId([i; 32]), Arc::new(vec![0; 1 << 20]));
        }
        assert!(c.bytes <= CACHE_BYTES);
        assert!(c.get(&ChunkId([39; 32])).is_some());
        assert!(c.get(&ChunkId([0; 32])).is_none());
    }
}
