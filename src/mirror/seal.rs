//! The sealed object format (seal format 2): what every object on a sealed
//! remote is, written since 2026-11-25.
//!
//! ```text
//! chunks   the plain bytes in chunks of 64 KiB, each sealed with AES-256-GCM
//!          under the payload key: the chunk's bytes then its 16-byte tag;
//!          nonce = chunk number (11 bytes, big-endian) ‖ 1 for the last
//!          chunk, 0 for the others
//! W bytes  an age file (X25519 recipients) whose plaintext is the object's
//!          payload key: 32 random bytes, new for every object
//! u32 LE   W
//! MAGIC    "snap-sealed-2\n" (14 bytes)
//! ```
//!
//! The key is at the end, so one request for a pack's last bytes brings its
//! key, its length and its header (packs keep their header at the end too).
//!
//! This is age's own STREAM construction with AES-256-GCM in place of
//! ChaCha20-Poly1305: every chunk but the last is full and the last is
//! marked, so truncation, reordering and tampering are detected, and a
//! ranged read opens only the chunks it covers. Every chunk but the last
//! holds `CHUNK` bytes; the last holds at least one, unless it is the only
//! one. Nonces never repeat: every object has its own random key.
//!
//! Why not age's payload: on this 2-core machine RustCrypto's
//! ChaCha20-Poly1305 (inside `age`) opens 1.17 GB/s per core and aws-lc's
//! AES-256-GCM (AES-NI, VAES) 11.9 GB/s; the cipher was most of what
//! sealing cost. Objects sealed before (whole age files, seal format 1)
//! are still read (`crypt::Codec::open`, `source`).

use super::crypt;
use crate::error::{Error, Result};
use age::x25519::{Identity, Recipient};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use rayon::prelude::*;
use std::io::Read;

/// The last bytes of every object in this format.
pub(crate) const MAGIC: &[u8; 14] = b"snap-sealed-2\n";
/// Plain bytes per chunk, and its size sealed (plus the tag).
pub(crate) const CHUNK: u64 = 64 << 10;
const TAG: u64 = 16;
pub(crate) const SEALED_CHUNK: u64 = CHUNK + TAG;
/// Spans of more chunks than this are opened on all cores.
const PARALLEL: usize = 8;
/// Bytes after the wrapped key: its length and the magic.
pub(crate) const FIXED: usize = 4 + MAGIC.len();

/// An object's payload key.
pub(crate) struct PayloadKey(LessSafeKey);

impl PayloadKey {
    fn new(bytes: &[u8]) -> Option<PayloadKey> {
        let key = UnboundKey::new(&AES_256_GCM, bytes).ok()?;
        Some(PayloadKey(LessSafeKey::new(key)))
    }
}

/// The nonce of chunk `n` (`last`: the object's last chunk).
fn nonce(n: u64, last: bool) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[3..11].copy_from_slice(&n.to_be_bytes());
    bytes[11] = u8::from(last);
    Nonce::assume_unique_for_key(bytes)
}

/// `plain`, sealed to every recipient in this format.
pub(crate) fn seal(recipients: &[Recipient], plain: &[u8]) -> Result<Vec<u8>> {
    let raw = crypt::random_key();
    let wrapped = crypt::seal_age(recipients, &raw)?;
    let key = PayloadKey::new(&raw).expect("32 bytes is an AES-256 key");
    let chunks = (plain.len() as u64).div_ceil(CHUNK).max(1);
    let mut out = Vec::with_capacity(plain.len() + (chunks * TAG) as usize + wrapped.len() + FIXED);
    let pieces: Vec<&[u8]> = match plain.is_empty() {
        true => vec![&[]],
        false => plain.chunks(CHUNK as usize).collect(),
    };
    for (n, piece) in pieces.into_iter().enumerate() {
        let at = out.len();
        out.extend_from_slice(piece);
        let last = n as u64 + 1 == chunks;
        let tag = key
            .0
            .seal_in_place_separate_tag(nonce(n as u64, last), Aad::empty(), &mut out[at..])
            .expect("a chunk is far below AES-GCM's limit");
        out.extend_from_slice(tag.as_ref());
    }
    out.extend_from_slice(&wrapped);
    out.extend_from_slice(&(wrapped.len() as u32).to_le_bytes());
    out.extend_from_slice(MAGIC);
    Ok(out)
}

/// Is `end` (an object's last bytes) the end of an object in this format?
pub(crate) fn is_sealed(end: &[u8]) -> bool {
    end.ends_with(MAGIC)
}

/// The length of the trailer (wrapped key, its length, magic) of an object
/// of `size` bytes whose last bytes are `end`.
pub(crate) fn trailer_len(object: &str, end: &[u8], size: u64) -> Result<u64> {
    if end.len() < FIXED || !is_sealed(end) {
        return Err(corrupt(object, "not a sealed object (format 2)"));
    }
    let at = end.len() - FIXED;
    let w = u32::from_le_bytes(end[at..at + 4].try_into().expect("4 bytes"));
    let len = u64::from(w) + FIXED as u64;
    if len > size {
        return Err(corrupt(object, "truncated: shorter than its trailer"));
    }
    Ok(len)
}

/// The payload key of an object whose trailer is `trailer`, unwrapped
/// with `identities`.
pub(crate) fn unwrap_key(
    object: &str,
    trailer: &[u8],
    identities: &[Identity],
) -> Result<PayloadKey> {
    let mut raw = Vec::with_capacity(32);
    crypt::opener(object, &trailer[..trailer.len() - FIXED], identities)?
        .read_to_end(&mut raw)
        .map_err(|e| corrupt(object, &format!("its wrapped key: {e}")))?;
    PayloadKey::new(&raw).ok_or_else(|| corrupt(object, "its wrapped key is not 32 bytes"))
}

/// Where an object's chunks lie: from its start to `end` (its trailer).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub end: u64,
}

impl Layout {
    /// The layout of an object whose chunks end at `end`, checked for a
    /// whole number of chunks and a tag.
    pub(crate) fn new(object: &str, end: u64) -> Result<Layout> {
        let chunks = end.div_ceil(SEALED_CHUNK);
        let last = end.saturating_sub(chunks.saturating_sub(1) * SEALED_CHUNK);
        if end < TAG || last < TAG || (chunks > 1 && last == TAG) {
            return Err(corrupt(
                object,
                "truncated: not a whole number of sealed chunks",
            ));
        }
        Ok(Layout { end })
    }

    /// How many chunks the object has.
    pub(crate) fn chunks(&self) -> u64 {
        self.end.div_ceil(SEALED_CHUNK)
    }

    /// The plain length, as the size says: trusted once the last chunk opens.
    pub(crate) fn plain_len(&self) -> u64 {
        self.end - self.chunks() * TAG
    }

    /// The sealed bytes `[start, end)` that hold plain `[offset, offset+len)`,
    /// and the number of the first chunk among them.
    pub(crate) fn span(&self, object: &str, offset: u64, len: u64) -> Result<(u64, u64, u64)> {
        if offset
            .checked_add(len)
            .is_none_or(|end| end > self.plain_len())
        {
            return Err(corrupt(object, "shorter than the read its index asks for"));
        }
        // At least one whole chunk, even for an empty read (at the end).
        let first = (offset / CHUNK).min(self.chunks() - 1);
        let last = (offset + len).div_ceil(CHUNK).max(first + 1);
        Ok((
            first * SEALED_CHUNK,
            (last * SEALED_CHUNK).min(self.end),
            first,
        ))
    }
}

/// Opens the sealed chunks in `span` (chunk `first` onwards, as `Layout::span`
/// gave) and returns plain `[offset, offset+len)` from them, in `span`'s own
/// memory: the chunks are opened in place (in parallel when there are
/// many), then their plain bytes moved down (a fresh buffer would cost
/// page faults and a cold copy).
pub(crate) fn open_span(
    key: &PayloadKey,
    layout: &Layout,
    object: &str,
    first: u64,
    mut span: Vec<u8>,
    (offset, len): (u64, u64),
) -> Result<Vec<u8>> {
    let chunks = layout.chunks();
    let sealed = SEALED_CHUNK as usize;
    let open = |(i, chunk): (usize, &mut [u8])| {
        let n = first + i as u64;
        key.0
            .open_in_place(nonce(n, n + 1 == chunks), Aad::empty(), chunk)
            .map(|_| ())
            .map_err(|_| corrupt(object, &format!("sealed chunk {n} does not authenticate")))
    };
    if span.len() > PARALLEL * sealed {
        span.par_chunks_mut(sealed).enumerate().try_for_each(open)?;
    } else {
        span.chunks_mut(sealed).enumerate().try_for_each(open)?;
    }
    let mut skip = (offset - first * CHUNK) as usize;
    let mut filled = 0usize;
    for at in (0..span.len()).step_by(sealed) {
        let plain = (span.len() - at).min(sealed) - TAG as usize;
        let from = skip.min(plain);
        let take = (plain - from).min(len as usize - filled);
        skip -= from;
        span.copy_within(at + from..at + from + take, filled);
        filled += take;
    }
    if filled as u64 != len {
        return Err(corrupt(object, "shorter than the read its index asks for"));
    }
    span.truncate(filled);
    Ok(span)
}

/// The plain bytes of the whole object `stored`.
pub(crate) fn open(object: &str, stored: &[u8], identities: &[Identity]) -> Result<Vec<u8>> {
    let size = stored.len() as u64;
    let end = size - trailer_len(object, stored, size)?;
    let key = unwrap_key(object, &stored[end as usize..], identities)?;
    let layout = Layout::new(object, end)?;
    let span = stored[..end as usize].to_vec();
    open_span(&key, &layout, object, 0, span, (0, layout.plain_len()))
}

fn corrupt(object: &str, what: &str) -> Error {
    Error::corrupt(format!("remote object {object}"), what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (Identity, Vec<Recipient>) {
        let id = Identity::generate();
        let r = vec![id.to_public()];
        (id, r)
    }

    #[test]
    fn every_length_round_trips_whole_and_by_range() {
        let (id, r) = keys();
        let c = CHUNK as usize;
        for len in [0, 1, c - 1, c, c + 1, 3 * c, 3 * c + 17] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let sealed = seal(&r, &plain).unwrap();
            assert!(is_sealed(&sealed));
            let ids = std::slice::from_ref(&id);
            assert_eq!(open("o", &sealed, ids).unwrap(), plain);
            let size = sealed.len() as u64;
            let end = size - trailer_len("o", &sealed, size).unwrap();
            let layout = Layout::new("o", end).unwrap();
            assert_eq!(layout.plain_len(), len as u64);
            let key = unwrap_key("o", &sealed[end as usize..], ids).unwrap();
            for (off, n) in [
                (0, len.min(5)),
                (len / 2, len / 3),
                (len.saturating_sub(3), len.min(3)),
                (len, 0),
            ] {
                let (s, e, first) = layout.span("o", off as u64, n as u64).unwrap();
                let span = sealed[s as usize..e as usize].to_vec();
                let got = open_span(&key, &layout, "o", first, span, (off as u64, n as u64));
                assert_eq!(got.unwrap(), &plain[off..off + n], "len {len} at {off}+{n}");
            }
        }
    }

    #[test]
    fn tampering_truncation_and_the_wrong_key_are_refused() {
        let (id, r) = keys();
        let plain = vec![9u8; 3 * CHUNK as usize + 5];
        let sealed = seal(&r, &plain).unwrap();
        let ids = std::slice::from_ref(&id);
        let mut flipped = sealed.clone();
        flipped[100] ^= 1;
        let bad = open("o", &flipped, ids);
        assert!(matches!(bad, Err(Error::Corrupt { .. })), "{bad:?}");
        let size = sealed.len() as u64;
        let end = (size - trailer_len("o", &sealed, size).unwrap()) as usize;
        // Chunks dropped before the trailer: the new last chunk is not marked last.
        let cut = [&sealed[..2 * SEALED_CHUNK as usize], &sealed[end..]].concat();
        assert!(matches!(open("o", &cut, ids), Err(Error::Corrupt { .. })));
        for short in [&sealed[..size as usize - 3], &sealed[..10], &sealed[..end]] {
            assert!(matches!(open("o", short, ids), Err(Error::Corrupt { .. })));
        }
        let other = Identity::generate();
        assert!(matches!(open("o", &sealed, &[other]), Err(Error::Key(_))));
        assert!(matches!(open("o", &sealed, &[]), Err(Error::Key(_))));
        // Two objects of the same plain bytes share nothing.
        let again = seal(&r, &plain).unwrap();
        assert_ne!(sealed[..64], again[..64]);
    }
}
