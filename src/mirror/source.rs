//! A remote's packs as a `PackSource`: what a view reads everything from,
//! and what a local store falls back to for a pack missing or damaged here.
//!
//! Sealed packs are age streams of 64 KiB chunks, so a ranged read fetches
//! and decrypts only the chunks that cover the bytes asked for.

use super::crypt::{self, Codec};
use super::layout::pack_key;
use super::remote::Remote;
use crate::error::{Error, Result};
use crate::id::PackId;
use crate::store::PackSource;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Plain bytes per age STREAM chunk, and its size sealed (plus the tag).
const CHUNK: u64 = 64 << 10;
const SEALED_CHUNK: u64 = CHUNK + 16;
/// Sealed streams kept open (each holds its key and one chunk).
const OPEN: usize = 64;

/// How the ids asked for map to names on the remote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ids {
    /// Ids are the remote's names (a view's index was built from them).
    Names,
    /// Ids are local pack ids, named on the remote by the codec.
    Local,
}

/// A remote's packs, read by ranged reads (and opened when sealed).
pub struct RemotePacks {
    remote: Arc<Remote>,
    codec: Codec,
    ids: Ids,
    /// Sizes of sealed objects by name, as listed (stat when unknown).
    sizes: HashMap<PackId, u64>,
    /// Local copies (same plain bytes) by remote name, read first.
    local: HashMap<PackId, PathBuf>,
    open: Mutex<HashMap<PackId, Arc<Mutex<Open>>>>,
}

type Stream = age::stream::StreamReader<Ranged>;

/// An open sealed pack, and how many bytes its next fetch should get at least.
struct Open {
    stream: Stream,
    fetch: Arc<AtomicU64>,
}

impl RemotePacks {
    /// The packs of `remote`, encoded by `codec`, asked for by `ids`.
    pub fn new(remote: Arc<Remote>, codec: Codec, ids: Ids) -> RemotePacks {
        RemotePacks {
            remote,
            codec,
            ids,
            sizes: HashMap::new(),
            local: HashMap::new(),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Object sizes by name, from a listing.
    pub fn with_sizes(mut self, sizes: HashMap<PackId, u64>) -> RemotePacks {
        self.sizes = sizes;
        self
    }

    /// Reads a pack from `path` (a local copy) instead of the remote.
    pub fn with_local_copy(mut self, name: PackId, path: PathBuf) -> RemotePacks {
        self.local.insert(name, path);
        self
    }

    /// The plain size of pack `name` (sealed: read from its last chunk,
    /// which authenticates the length).
    pub fn plain_len(&self, name: &PackId) -> Result<u64> {
        if !self.codec.sealed() {
            if let Some(size) = self.sizes.get(name) {
                return Ok(*size);
            }
            let key = pack_key(name);
            return self
                .remote
                .size(&key)?
                .ok_or_else(|| Error::corrupt(format!("remote pack {key}"), "it is missing"));
        }
        let open = self.stream(name)?;
        let mut open = open.lock().expect("stream");
        open.fetch.store(SEALED_CHUNK, Relaxed);
        open.stream
            .seek(SeekFrom::End(0))
            .map_err(|e| Error::corrupt(format!("remote pack {}", pack_key(name)), e.to_string()))
    }

    fn name(&self, id: &PackId) -> PackId {
        match self.ids {
            Ids::Names => *id,
            Ids::Local => PackId(self.codec.name(&id.0)),
        }
    }

    /// The open stream of pack `name`.
    fn stream(&self, name: &PackId) -> Result<Arc<Mutex<Open>>> {
        if let Some(s) = self.open.lock().expect("open streams").get(name) {
            return Ok(s.clone());
        }
        let key = pack_key(name);
        let size = match self.sizes.get(name) {
            Some(s) => *s,
            None => self
                .remote
                .size(&key)?
                .ok_or_else(|| Error::corrupt(format!("remote pack {key}"), "it is missing"))?,
        };
        let fetch = Arc::new(AtomicU64::new(0));
        let ranged = Ranged {
            remote: self.remote.clone(),
            key: key.clone(),
            size,
            pos: 0,
            buf_start: 0,
            buf: Vec::new(),
            fetch: fetch.clone(),
        };
        let stream = crypt::opener(&key, ranged, self.codec.identities())?;
        let s = Arc::new(Mutex::new(Open { stream, fetch }));
        let mut open = self.open.lock().expect("open streams");
        if open.len() >= OPEN {
            open.clear();
        }
        open.insert(*name, s.clone());
        Ok(s)
    }
}

impl RemotePacks {
    /// `len` plain bytes at `offset` of sealed pack `name`.
    fn read_sealed(&self, name: &PackId, offset: u64, len: u64) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let open = self.stream(name)?;
        let mut open = open.lock().expect("stream");
        let key = pack_key(name);
        let bad = |e: std::io::Error| Error::corrupt(format!("remote pack {key}"), e.to_string());
        // Every sealed chunk the range covers comes in one request.
        let chunks = (offset + len).div_ceil(CHUNK) - offset / CHUNK;
        open.fetch.store(chunks.max(1) * SEALED_CHUNK, Relaxed);
        open.stream.seek(SeekFrom::Start(offset)).map_err(bad)?;
        let mut buf = Vec::with_capacity(len as usize);
        (&mut open.stream)
            .take(len)
            .read_to_end(&mut buf)
            .map_err(bad)?;
        if buf.len() as u64 != len {
            return Err(Error::corrupt(
                format!("remote pack {key}"),
                "shorter than its header says",
            ));
        }
        Ok(buf)
    }
}

impl PackSource for RemotePacks {
    fn describe(&self) -> String {
        self.remote.url.clone()
    }

    fn read_range(&self, id: &PackId, offset: u64, len: u64) -> Result<Vec<u8>> {
        let name = self.name(id);
        if let Some(path) = self.local.get(&name) {
            let mut buf = vec![0u8; len as usize];
            let file = std::fs::File::open(path).map_err(Error::io("open pack", path))?;
            file.read_exact_at(&mut buf, offset)
                .map_err(Error::io("read pack", path))?;
            return Ok(buf);
        }
        if !self.codec.sealed() {
            return self.remote.read_range(&pack_key(&name), offset, len);
        }
        self.read_sealed(&name, offset, len)
    }

    fn read_pack(&self, id: &PackId) -> Result<Vec<u8>> {
        let name = self.name(id);
        let key = pack_key(&name);
        let plain = match self.local.get(&name) {
            Some(path) => std::fs::read(path).map_err(Error::io("read pack", path))?,
            None => self.codec.open(&key, &self.remote.read(&key)?)?,
        };
        if self.codec.name(&PackId::of(&plain).0) != name.0 {
            return Err(Error::corrupt(
                format!("remote pack {key}"),
                "its content does not match its name",
            ));
        }
        Ok(plain)
    }
}

/// A remote object as `Read + Seek`, fetched by ranged reads: each miss
/// fetches `fetch` bytes from the position (the sealed chunks the current
/// read needs), and at least what the read asks for.
pub struct Ranged {
    remote: Arc<Remote>,
    key: String,
    size: u64,
    pos: u64,
    buf_start: u64,
    buf: Vec<u8>,
    fetch: Arc<AtomicU64>,
}

impl Read for Ranged {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.size || out.is_empty() {
            return Ok(0);
        }
        let end = self.buf_start + self.buf.len() as u64;
        if self.pos < self.buf_start || self.pos >= end {
            let want = self.fetch.load(Relaxed).max(out.len() as u64).max(4096);
            let until = (self.pos + want).min(self.size);
            self.buf = self
                .remote
                .read_range(&self.key, self.pos, until - self.pos)
                .map_err(std::io::Error::other)?;
            self.buf_start = self.pos;
        }
        let at = (self.pos - self.buf_start) as usize;
        let n = out.len().min(self.buf.len() - at);
        out[..n].copy_from_slice(&self.buf[at..at + n]);
        self.pos += n as u64;
        if at + n == self.buf.len() {
            // Consumed: an open stream does not keep megabytes alive.
            self.buf = Vec::new();
            self.buf_start = 0;
        }
        Ok(n)
    }
}

impl Seek for Ranged {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.pos = match pos {
            SeekFrom::Start(p) => p,
            SeekFrom::End(d) => (self.size as i64 + d) as u64,
            SeekFrom::Current(d) => (self.pos as i64 + d) as u64,
        };
        Ok(self.pos)
    }
}
