//! A remote's packs as a `PackSource`: what a view reads everything from,
//! and what a local store falls back to for a pack missing or damaged here.
//!
//! Sealed packs are age streams of 64 KiB chunks, so a ranged read fetches
//! and decrypts only the chunks that cover the bytes asked for, in one
//! request. A long read is then cut into pieces of whole chunks, each
//! decrypted by its own stream on its own core; idle streams are pooled per
//! pack, so a pack's header is fetched once and its key unwrapped once per
//! concurrent reader.

use super::crypt::{self, Codec};
use super::layout::pack_key;
use super::remote::Remote;
use crate::error::{Error, Result};
use crate::id::PackId;
use crate::store::PackSource;
use rayon::prelude::*;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Plain bytes per age STREAM chunk, and its size sealed (plus the tag).
const CHUNK: u64 = 64 << 10;
const SEALED_CHUNK: u64 = CHUNK + 16;
/// Idle sealed streams kept open, over all packs (each holds its key and
/// at most two chunks).
const OPEN: usize = 64;
/// Chunks per piece of a long sealed read (1 MiB plain).
const PIECE_CHUNKS: u64 = 16;
/// Bytes of a sealed object's start kept per pack: its age header.
const HEAD: u64 = 4096;
/// Packs whose head (header and last chunk, ~68 KiB) is kept: a restore
/// reads on in the packs it just read, and memory stays bounded.
const HEADS: usize = 256;

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
    sealed: Mutex<Pool>,
}

type Stream = age::stream::StreamReader<Ranged>;

/// An open sealed pack, and what its reads are fed from.
struct Open {
    stream: Stream,
    feed: Arc<Mutex<Feed>>,
}

/// What a `Ranged` reads from: `span` when it covers the position (the
/// sealed bytes one read fetched for all its pieces), `tail` (the pack's
/// last chunk) when it does, else (a header longer than `HEAD`) a request.
struct Feed {
    span: Option<Arc<Span>>,
    tail: Arc<Span>,
}

/// Sealed bytes of an object from offset `start`.
struct Span {
    start: u64,
    bytes: Vec<u8>,
}

/// A sealed pack's size, first bytes (its age header) and where its
/// payload (the STREAM chunks) starts.
#[derive(Clone)]
struct Head {
    size: u64,
    bytes: Arc<Vec<u8>>,
    payload: u64,
    /// The last sealed chunk, which every new stream reads once to learn
    /// (and authenticate) the plain length: fetched once per pack, not once
    /// per stream.
    tail: Arc<Span>,
}

/// What is known of sealed packs: the heads of at most `HEADS` packs, and
/// idle streams ready to read (at most `OPEN` in all).
#[derive(Default)]
struct Pool {
    heads: HashMap<PackId, Head>,
    idle: HashMap<PackId, Vec<Open>>,
    idle_count: usize,
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
            sealed: Mutex::new(Pool::default()),
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
        let mut open = self.take(name, &self.head_of(name)?)?;
        let len = open.stream.seek(SeekFrom::End(0)).map_err(|e| {
            Error::corrupt(format!("remote pack {}", pack_key(name)), e.to_string())
        })?;
        self.give_back(name, open);
        Ok(len)
    }

    fn name(&self, id: &PackId) -> PackId {
        match self.ids {
            Ids::Names => *id,
            Ids::Local => PackId(self.codec.name(&id.0)),
        }
    }

    /// The head of sealed pack `name`: fetched once, then kept.
    fn head_of(&self, name: &PackId) -> Result<Head> {
        if let Some(head) = self.sealed.lock().expect("pool").heads.get(name) {
            return Ok(head.clone());
        }
        let head = self.head(name, &pack_key(name))?;
        let mut pool = self.sealed.lock().expect("pool");
        if pool.heads.len() >= HEADS {
            pool.heads.clear();
        }
        pool.heads.insert(*name, head.clone());
        Ok(head)
    }

    /// An idle stream of pack `name` (whose head is `head`), or a new one.
    fn take(&self, name: &PackId, head: &Head) -> Result<Open> {
        let mut pool = self.sealed.lock().expect("pool");
        if let Some(open) = pool.idle.get_mut(name).and_then(Vec::pop) {
            pool.idle_count -= 1;
            return Ok(open);
        }
        drop(pool);
        let key = pack_key(name);
        let feed = Arc::new(Mutex::new(Feed {
            span: None,
            tail: head.tail.clone(),
        }));
        let ranged = Ranged {
            remote: self.remote.clone(),
            key: key.clone(),
            size: head.size,
            pos: 0,
            buf_start: 0,
            buf: head.bytes.to_vec(),
            feed: feed.clone(),
        };
        let stream = crypt::opener(&key, ranged, self.codec.identities())?;
        Ok(Open { stream, feed })
    }

    /// Fetches the head of sealed pack `name` (object `key`).
    fn head(&self, name: &PackId, key: &str) -> Result<Head> {
        let size = match self.sizes.get(name) {
            Some(s) => *s,
            None => self
                .remote
                .size(key)?
                .ok_or_else(|| Error::corrupt(format!("remote pack {key}"), "it is missing"))?,
        };
        let bytes = self.remote.read_range(key, 0, size.min(HEAD))?;
        let payload = crypt::payload_start(key, &bytes)?;
        let start = payload + size.saturating_sub(payload + 1) / SEALED_CHUNK * SEALED_CHUNK;
        let tail = Span {
            start,
            bytes: self
                .remote
                .read_range(key, start, size.saturating_sub(start))?,
        };
        Ok(Head {
            size,
            bytes: Arc::new(bytes),
            payload,
            tail: Arc::new(tail),
        })
    }

    /// Returns a stream to the pool (which, when full, forgets the idle
    /// streams of every other pack: a restore reads on in this one).
    fn give_back(&self, name: &PackId, open: Open) {
        open.feed.lock().expect("feed").span = None;
        let mut pool = self.sealed.lock().expect("pool");
        if pool.idle_count >= OPEN {
            pool.idle.retain(|k, _| k == name);
            pool.idle_count = pool.idle.values().map(Vec::len).sum();
        }
        pool.idle.entry(*name).or_default().push(open);
        pool.idle_count += 1;
    }

    /// `len` plain bytes at `offset` of sealed pack `name`: the sealed
    /// chunks that cover them fetched in one request, then decrypted in
    /// pieces in parallel.
    fn read_sealed(&self, name: &PackId, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len as usize];
        if len == 0 {
            return Ok(buf);
        }
        let head = self.head_of(name)?;
        let start = head.payload + offset / CHUNK * SEALED_CHUNK;
        let end = (head.payload + (offset + len).div_ceil(CHUNK) * SEALED_CHUNK).min(head.size);
        let bytes = self
            .remote
            .read_range(&pack_key(name), start, end.saturating_sub(start))?;
        let span = Arc::new(Span { start, bytes });
        let piece = PIECE_CHUNKS * CHUNK;
        let mut pieces = Vec::new();
        let (mut at, mut rest) = (offset, &mut buf[..]);
        while !rest.is_empty() {
            let n = ((at / piece + 1) * piece - at).min(rest.len() as u64);
            let (this, tail) = rest.split_at_mut(n as usize);
            pieces.push((at, this));
            (at, rest) = (at + n, tail);
        }
        pieces.into_par_iter().try_for_each(|(at, out)| {
            self.read_piece(name, self.take(name, &head)?, &span, at, out)
        })?;
        Ok(buf)
    }

    /// Fills `out` from plain offset `offset` of sealed pack `name` with
    /// `open`, fed from `span`.
    fn read_piece(
        &self,
        name: &PackId,
        mut open: Open,
        span: &Arc<Span>,
        offset: u64,
        out: &mut [u8],
    ) -> Result<()> {
        let key = pack_key(name);
        let bad = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                Error::corrupt(format!("remote pack {key}"), "shorter than its header says")
            }
            _ => Error::corrupt(format!("remote pack {key}"), e.to_string()),
        };
        open.feed.lock().expect("feed").span = Some(span.clone());
        open.stream.seek(SeekFrom::Start(offset)).map_err(bad)?;
        open.stream.read_exact(out).map_err(bad)?;
        self.give_back(name, open);
        Ok(())
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

/// A remote object as `Read + Seek`, fetched by ranged reads: from the
/// feed's span or tail when one covers the position, else each miss
/// fetches a sealed chunk's worth from the position, at least what the read
/// asks.
pub struct Ranged {
    remote: Arc<Remote>,
    key: String,
    size: u64,
    pos: u64,
    buf_start: u64,
    buf: Vec<u8>,
    feed: Arc<Mutex<Feed>>,
}

impl Read for Ranged {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.size || out.is_empty() {
            return Ok(0);
        }
        let end = self.buf_start + self.buf.len() as u64;
        if self.pos < self.buf_start || self.pos >= end {
            let (span, tail) = {
                let feed = self.feed.lock().expect("feed");
                (feed.span.clone(), feed.tail.clone())
            };
            let covers =
                |s: &Arc<Span>| s.start <= self.pos && self.pos < s.start + s.bytes.len() as u64;
            if let Some(span) = span.filter(covers).or(Some(tail).filter(covers)) {
                let at = (self.pos - span.start) as usize;
                let n = out.len().min(span.bytes.len() - at);
                out[..n].copy_from_slice(&span.bytes[at..at + n]);
                self.pos += n as u64;
                return Ok(n);
            }
            let want = SEALED_CHUNK.max(out.len() as u64);
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
