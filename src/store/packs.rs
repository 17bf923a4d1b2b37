//! Reading packs: a chunk by its location, a pack's header from its end, and
//! rebuilding the index from every pack header and snapshot record.

use super::chain::{bases_named, dictionary};
use super::{Index, Location, Packs, Store};
use crate::durable;
use crate::error::{Error, Result};
use crate::format::entry::{bases_of, decode_entry, decode_link};
use crate::format::pack::{self, PackEntry, TRAILER_LEN};
use crate::id::{ChunkId, PackId};
use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Reads and verifies chunks; keeps a bounded set of open pack files and may
/// be shared between threads.
/// Owns a handle of its store (a clone: paths, config and the fallback
/// source), so a reader may live as long as its user (a mount) needs.
pub struct PackReader {
    store: Store,
    open: Mutex<HashMap<PackId, Arc<File>>>,
}

const MAX_OPEN: usize = 64;

impl PackReader {
    pub fn new(store: &Store) -> Self {
        PackReader {
            store: store.clone(),
            open: Mutex::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn file(&self, id: &PackId) -> Result<Arc<File>> {
        let mut open = self.open.lock().expect("pack cache lock");
        if let Some(f) = open.get(id) {
            return Ok(f.clone());
        }
        let path = self.store.pack_path(id);
        let f = Arc::new(File::open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::corrupt(
                    format!("pack {id}"),
                    format!("it is missing from the store ({})", path.display()),
                )
            } else {
                Error::io("open pack", &path)(e)
            }
        })?);
        if open.len() >= MAX_OPEN {
            open.clear();
        }
        open.insert(*id, f.clone());
        Ok(f)
    }

    /// The stored bytes of the entry at `loc` (not yet decoded).
    pub(crate) fn read_stored(&self, loc: &Location) -> Result<Vec<u8>> {
        self.read_span(&loc.pack, loc.entry.offset, loc.entry.length as u64)
    }

    /// Bytes of a pack: from the view's source, or from `packs/` with a
    /// missing pack read from the fallback source (and noted).
    fn read_span(&self, pack: &PackId, offset: u64, len: u64) -> Result<Vec<u8>> {
        match &self.store.packs {
            Packs::View(source) => source.read_range(pack, offset, len),
            Packs::Fallback(source, _) if !self.store.pack_path(pack).exists() => {
                self.store.note_fell_back(pack);
                source.read_range(pack, offset, len)
            }
            _ => {
                let file = self.file(pack)?;
                let mut buf = vec![0u8; len as usize];
                // Bytes past the pack's end are damage (a truncated pack, or
                // an index row naming the wrong pack), not an I/O failure:
                // callers that meet damage rebuild the index or name it.
                file.read_exact_at(&mut buf, offset)
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::UnexpectedEof => Error::corrupt(
                            format!("pack {pack}"),
                            format!("{len} bytes at offset {offset} lie past its end"),
                        ),
                        _ => Error::io("read pack", self.store.pack_path(pack))(e),
                    })?;
                Ok(buf)
            }
        }
    }

    /// Is there a fallback source to read a damaged local entry from?
    pub(crate) fn has_fallback(&self) -> bool {
        matches!(self.store.packs, Packs::Fallback(..))
    }

    /// The stored bytes of the entry at `loc` from the fallback source (its
    /// local copy failed its check), noting the pack as fallen back.
    pub(crate) fn read_from_fallback(&self, loc: &Location) -> Result<Vec<u8>> {
        let Packs::Fallback(source, _) = &self.store.packs else {
            unreachable!("only called with a fallback")
        };
        self.store.note_fell_back(&loc.pack);
        source.read_range(&loc.pack, loc.entry.offset, loc.entry.length as u64)
    }

    /// Stored bytes of many entries, in order; entries that sit back to back
    /// in one pack are fetched with one read.
    pub(crate) fn read_stored_many(&self, locs: &[Location]) -> Vec<Result<Vec<u8>>> {
        let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
        for (i, l) in locs.iter().enumerate() {
            match runs.last_mut() {
                Some(r)
                    if {
                        let p = &locs[r.end - 1];
                        p.pack == l.pack && p.entry.offset + p.entry.length as u64 == l.entry.offset
                    } =>
                {
                    r.end = i + 1
                }
                _ => runs.push(i..i + 1),
            }
        }
        let mut out = Vec::with_capacity(locs.len());
        for r in runs {
            let (first, last) = (&locs[r.start], &locs[r.end - 1]);
            let len = last.entry.offset + last.entry.length as u64 - first.entry.offset;
            match self.read_span(&first.pack, first.entry.offset, len) {
                Ok(buf) => out.extend(r.map(|i| {
                    let start = (locs[i].entry.offset - first.entry.offset) as usize;
                    Ok(buf[start..start + locs[i].entry.length as usize].to_vec())
                })),
                Err(e) => out.extend(r.map(|_| Err(e.duplicate()))),
            }
        }
        out
    }
}

/// Decodes an entry, naming its pack in any error.
pub(crate) fn decode_named(loc: &Location, stored: &[u8], base: Option<&[u8]>) -> Result<Vec<u8>> {
    decode_entry(&loc.entry, stored, base).map_err(|e| in_pack(loc, e))
}

/// Like `decode_named`, without hashing the result: for a base inside a
/// chain whose last chunk is checked (`entry::decode_link`).
pub(crate) fn decode_link_named(
    loc: &Location,
    stored: &[u8],
    base: Option<&[u8]>,
) -> Result<Vec<u8>> {
    decode_link(&loc.entry, stored, base).map_err(|e| in_pack(loc, e))
}

fn in_pack(loc: &Location, e: Error) -> Error {
    match e {
        Error::Corrupt { what, detail } => {
            Error::corrupt(format!("{what} in pack {}", loc.pack), detail)
        }
        other => other,
    }
}

/// Reads and validates the header of the pack file at `path`.
pub fn read_header(path: &Path) -> Result<Vec<PackEntry>> {
    let file = File::open(path).map_err(Error::io("open pack", path))?;
    let len = file.metadata().map_err(Error::io("stat", path))?.len();
    let named = |e: Error| match e {
        Error::Corrupt { detail, .. } => Error::corrupt(format!("pack {}", path.display()), detail),
        other => other,
    };
    if len < TRAILER_LEN as u64 {
        return Err(named(Error::corrupt("pack", "shorter than its trailer")));
    }
    let mut trailer = [0u8; TRAILER_LEN];
    file.read_exact_at(&mut trailer, len - TRAILER_LEN as u64)
        .map_err(Error::io("read pack", path))?;
    let (header_len, sum) = pack::decode_trailer(&trailer, len).map_err(named)?;
    let data_len = len - TRAILER_LEN as u64 - header_len as u64;
    let mut header = vec![0u8; header_len as usize];
    file.read_exact_at(&mut header, data_len)
        .map_err(Error::io("read pack", path))?;
    pack::decode_header(&header, &sum, data_len).map_err(named)
}

/// Reads a whole pack (from the source when the store is a view) and
/// checks its name (so every byte), its header, and decodes every entry;
/// `base` supplies the plain bytes of the bases that delta entries name. A
/// delta entry the index does not point to (`indexed` false: a dead entry
/// in a kept pack) may have lost its base to gc, so it is checked by the
/// pack's hash alone.
pub(crate) fn verify_pack(
    store: &Store,
    id: &PackId,
    indexed: impl Fn(&PackEntry) -> bool,
    base: impl Fn(&ChunkId) -> Result<Vec<u8>>,
) -> Result<Vec<PackEntry>> {
    let bytes = match store.readable_pack_path(id) {
        // The source checks a whole pack against the name it has there.
        None => store.source().expect("a view has a source").read_pack(id)?,
        Some(path) => {
            let bytes = fs::read(&path).map_err(Error::io("read pack", &path))?;
            if PackId::of(&bytes) != *id {
                return Err(Error::corrupt(
                    format!("pack {id}"),
                    "content does not match its name",
                ));
            }
            bytes
        }
    };
    let entries = pack::decode_pack(&bytes)?;
    for e in &entries {
        let stored = &bytes[e.offset as usize..(e.offset + e.length as u64) as usize];
        if e.kind.is_delta() && !indexed(e) {
            continue;
        }
        let in_pack = |err: Error| Error::corrupt(format!("pack {id}"), err.to_string());
        let loc = Location {
            pack: *id,
            entry: e.clone(),
        };
        let ids = bases_named(&loc, stored).map_err(in_pack)?;
        let plains = ids
            .iter()
            .map(|b| Ok((*b, base(b)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        let dict = dictionary(&loc, &ids, |b| plains.get(b))?;
        decode_entry(e, stored, dict.as_deref()).map_err(in_pack)?;
    }
    Ok(entries)
}

/// What `rebuild_index` found.
#[derive(Debug, Default, serde::Serialize)]
pub struct RebuildReport {
    pub packs: u64,
    pub chunks: u64,
    pub snapshots: u64,
    /// Packs whose header could not be read; they were left out of the index.
    pub bad_packs: Vec<String>,
    /// Delta entries whose base no pack holds in full; left out of the index.
    pub undecodable: u64,
    /// Snapshot records that are corrupt (named with the problem).
    pub bad_records: Vec<String>,
}

/// Recreates the index from the pack headers and snapshot records alone.
/// The caller holds the store lock exclusively; the old index file is
/// replaced by the new one in one rename.
pub fn rebuild_index(store: &Store) -> Result<RebuildReport> {
    let path = store.index_path();
    let tmp = store.tmp_dir().join("index.rebuild");
    if tmp.exists() {
        durable::remove_file(&tmp)?;
    }
    let mut index = Index::open(&tmp)?;
    let report = build_index(store, &index)?;
    // A commit per pack leaves the file several times its live size.
    index.compact()?;
    drop(index);
    durable::rename(&tmp, &path)?;
    durable::fsync_dir(store.root())?;
    Ok(report)
}

/// An index of the store built in a private temporary directory, for a
/// reader that cannot use (or write) the store's own.
pub(crate) fn private_index(store: &Store) -> Result<Index> {
    let dir = tempfile::tempdir().map_err(Error::io("create temporary directory", "/tmp"))?;
    let index = Index::open_private(dir)?;
    build_index(store, &index)?;
    Ok(index)
}

/// Fills an empty index from the packs and records. Invariant kept: every
/// row names a chunk that can be decoded, so a delta whose base is not
/// indexed in full (a gc deleted it) is left out.
fn build_index(store: &Store, index: &Index) -> Result<RebuildReport> {
    let mut report = RebuildReport::default();
    for (id, file) in store.pack_files()? {
        match read_header(&file) {
            Ok(entries) => {
                let size = fs::metadata(&file).map_err(Error::io("stat", &file))?.len();
                index.add_pack(&id, size, &entries)?;
                report.packs += 1;
                report.chunks += entries.len() as u64;
            }
            Err(e) => report.bad_packs.push(format!("{}: {e}", file.display())),
        }
    }
    let reader = index.reader()?;
    let packs = PackReader::new(store);
    let mut deltas = reader.delta_rows()?;
    deltas.sort_by_key(|l| (l.pack, l.entry.offset));
    let bases: HashMap<ChunkId, Option<Vec<ChunkId>>> = deltas
        .iter()
        .zip(packs.read_stored_many(&deltas))
        .map(|(l, s)| (l.entry.id, s.ok().and_then(|b| bases_of(l.entry.kind, &b))))
        .collect();
    // A delta row stays when every path down its bases reaches a row
    // stored in full within `MAX_READ_CHAIN` steps.
    let mut known = HashMap::new();
    let mut undecodable = Vec::new();
    for d in bases.keys() {
        if !super::chain::decodable(d, 0, &bases, &reader, &mut known)? {
            undecodable.push(*d);
        }
    }
    drop(reader);
    report.undecodable = undecodable.len() as u64;
    index.remove_chunks(&undecodable)?;
    let (snapshots, bad) = store.snapshots_checked()?;
    for (id, snap) in snapshots {
        index.add_snapshot(&id, snap.time.timestamp())?;
        report.snapshots += 1;
    }
    report.bad_records = bad;
    Ok(report)
}

/// What `repair_packs` did.
#[derive(Debug, Default, serde::Serialize)]
pub struct RepairReport {
    /// Packs checked (every pack the index names or `packs/` holds).
    pub checked: u64,
    /// Packs replaced by the source's copy.
    pub replaced: Vec<String>,
    /// Packs missing or damaged here that the source could not give.
    pub failed: Vec<String>,
}

/// Checks every pack against its name and replaces each one that is
/// missing or damaged with `source`'s copy (checked against the same name
/// before it is renamed into place; a damaged file is only ever replaced by
/// bytes that hash to its name).
pub fn repair_packs(
    store: &Store,
    source: &dyn super::PackSource,
    wait: std::time::Duration,
) -> Result<RepairReport> {
    let lock = store.lock("repair packs", wait)?;
    let index = store.open_index(&lock)?;
    let mut ids = index.pack_ids()?;
    ids.extend(store.pack_files()?.into_iter().map(|(id, _)| id));
    let mut ids: Vec<PackId> = ids.into_iter().collect();
    ids.sort();
    let mut report = RepairReport::default();
    for id in ids {
        report.checked += 1;
        let path = store.pack_path(&id);
        if fs::read(&path).is_ok_and(|b| PackId::of(&b) == id) {
            continue;
        }
        let fixed = source.read_pack(&id).and_then(|bytes| {
            if PackId::of(&bytes) != id {
                return Err(Error::corrupt(
                    format!("pack {id} from {}", source.describe()),
                    "does not match its name",
                ));
            }
            durable::create_dir_durable(path.parent().expect("packs/xx"))?;
            durable::write_atomic(&store.tmp_dir(), &path, &bytes)
        });
        match fixed {
            Ok(()) => report.replaced.push(id.to_hex()),
            Err(e) => report.failed.push(format!("pack {id}: {e}")),
        }
    }
    Ok(report)
}
