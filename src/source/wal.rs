//! SQLite's write-ahead log, read from outside (sqlite.org/fileformat2.html,
//! "The Write-Ahead Log"): a 32-byte header, then frames of a 24-byte header
//! and one page. A frame belongs to the log only when its salts equal the
//! header's and its cumulative checksum holds; a new checkpoint sequence and
//! new salts mean the log was restarted. `watch` reads frames only to learn
//! which pages changed: the pages themselves come through SQLite.
//!
//! Pure parsing here; `scan` reads a file it is given.

use std::io::{Read, Seek, SeekFrom};

pub(crate) const HEADER: usize = 32;
pub(crate) const FRAME_HEADER: usize = 24;
const MAGIC: u32 = 0x377f_0682;

/// A log's header: what identifies one generation of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub page_size: u32,
    /// Incremented at every restart of the log.
    pub checkpoint_seq: u32,
    pub salts: [u32; 2],
    /// Checksums in big-endian words (bit 0 of the magic).
    pub big_endian: bool,
    /// The header's own checksum: the chain's start.
    pub checksum: [u32; 2],
}

/// A frame of the log that belongs to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// 1-based index in the log.
    pub index: u32,
    pub page: u32,
    /// The database's size in pages after the commit, for a commit frame.
    pub commit: Option<u32>,
    /// The cumulative checksum after this frame.
    pub checksum: [u32; 2],
}

/// Decodes a header; None when it is not a valid one (a log being created,
/// or not a log).
pub fn header(b: &[u8]) -> Option<Header> {
    if b.len() < HEADER {
        return None;
    }
    let w = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().expect("4 bytes"));
    if w(0) & !1 != MAGIC || w(4) != 3_007_000 {
        return None;
    }
    let big_endian = w(0) & 1 == 1;
    let checksum = [w(24), w(28)];
    if checksum_of(big_endian, [0, 0], &b[..24]) != checksum {
        return None;
    }
    let page_size = match w(8) {
        1 => 65536,
        n => n,
    };
    (page_size >= 512 && page_size.is_power_of_two()).then_some(Header {
        page_size,
        checkpoint_seq: w(12),
        salts: [w(16), w(20)],
        big_endian,
        checksum,
    })
}

/// SQLite's WAL checksum: over 8-byte steps of `data`, continuing from `s`.
pub(crate) fn checksum_of(big_endian: bool, mut s: [u32; 2], data: &[u8]) -> [u32; 2] {
    for step in data.chunks_exact(8) {
        let word = |b: &[u8]| {
            let b: [u8; 4] = b.try_into().expect("4 bytes");
            match big_endian {
                true => u32::from_be_bytes(b),
                false => u32::from_le_bytes(b),
            }
        };
        s[0] = s[0].wrapping_add(word(&step[..4])).wrapping_add(s[1]);
        s[1] = s[1].wrapping_add(word(&step[4..])).wrapping_add(s[0]);
    }
    s
}

/// Decodes frame `index` (its header and page, `bytes`) continuing the chain
/// from `prev`; None when it does not belong to the log of `h`.
pub(crate) fn frame(h: &Header, index: u32, prev: [u32; 2], bytes: &[u8]) -> Option<Frame> {
    if bytes.len() != FRAME_HEADER + h.page_size as usize {
        return None;
    }
    let w = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    if [w(8), w(12)] != h.salts || w(0) == 0 {
        return None;
    }
    let s = checksum_of(h.big_endian, prev, &bytes[..8]);
    let s = checksum_of(h.big_endian, s, &bytes[FRAME_HEADER..]);
    (s == [w(16), w(20)]).then_some(Frame {
        index,
        page: w(0),
        commit: (w(4) != 0).then_some(w(4)),
        checksum: s,
    })
}

/// Byte offset of frame `index` (1-based) in a log of `page_size` pages.
pub(crate) fn frame_offset(page_size: u32, index: u32) -> u64 {
    HEADER as u64 + (index as u64 - 1) * (FRAME_HEADER as u64 + page_size as u64)
}

/// The frames of `h`'s log from index `from` (1-based) on, continuing the
/// chain from `prev`, as long as they belong to it and at most `limit`:
/// every frame up to the first that does not (the log's end, a frame being
/// written, or one of another generation). Returns them and the bytes read.
pub(crate) fn scan(
    file: &mut (impl Read + Seek),
    h: &Header,
    from: u32,
    prev: [u32; 2],
    limit: u32,
) -> std::io::Result<(Vec<Frame>, u64)> {
    let size = FRAME_HEADER + h.page_size as usize;
    file.seek(SeekFrom::Start(frame_offset(h.page_size, from)))?;
    let mut r = std::io::BufReader::with_capacity(1 << 20, file);
    let mut buf = vec![0u8; size];
    let (mut out, mut read, mut chain) = (Vec::new(), 0u64, prev);
    for index in from..from.saturating_add(limit) {
        match r.read_exact(&mut buf) {
            Ok(()) => read += size as u64,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let Some(f) = frame(h, index, chain, &buf) else {
            break;
        };
        chain = f.checksum;
        out.push(f);
    }
    Ok((out, read))
}

/// Where a read transaction stands in the log: the fields of SQLite's
/// `sqlite3_snapshot`, which is a copy of the WAL-index header (`WalIndexHdr`
/// in sqlite3.c, native byte order): the last frame it reads, the database
/// size, that frame's checksum (native words) and the log's salts (the
/// header's bytes). This layout is SQLite's
/// internal one, so a position is only trusted when the log file agrees
/// with it (the same salts, and frame `last` ending the chain with
/// `checksum`); otherwise the change is unknown and a point reads it all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub last: u32,
    pub pages: u32,
    pub checksum: [u32; 2],
    pub salts: [u32; 2],
}

/// A `Position` from the 48 bytes of a `sqlite3_snapshot`.
pub fn position(b: &[u8; 48]) -> Position {
    let w = |i: usize| u32::from_ne_bytes(b[i..i + 4].try_into().expect("4 bytes"));
    // The salts are the log header's bytes, copied as they are (big-endian).
    let be = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().expect("4 bytes"));
    Position {
        last: w(16),
        pages: w(20),
        checksum: [w(24), w(28)],
        salts: [be(32), be(36)],
    }
}

/// The frames up to and including the last commit frame: what a reader of
/// the log counts as committed.
pub fn committed(frames: &[Frame]) -> &[Frame] {
    let end = frames
        .iter()
        .rposition(|f| f.commit.is_some())
        .map_or(0, |i| i + 1);
    &frames[..end]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A log of `pages` (page numbers; each frame commits when its flag is set).
    pub(crate) fn log(salts: [u32; 2], seq: u32, frames: &[(u32, bool)]) -> Vec<u8> {
        let ps = 512u32;
        let mut h = Vec::new();
        for w in [MAGIC, 3_007_000, ps, seq, salts[0], salts[1]] {
            h.extend(w.to_be_bytes());
        }
        let mut s = checksum_of(false, [0, 0], &h);
        h.extend(s[0].to_be_bytes());
        h.extend(s[1].to_be_bytes());
        for (i, (page, commit)) in frames.iter().enumerate() {
            let mut f = Vec::new();
            for w in [
                *page,
                if *commit { i as u32 + 1 } else { 0 },
                salts[0],
                salts[1],
            ] {
                f.extend(w.to_be_bytes());
            }
            let data = vec![(*page % 251) as u8; ps as usize];
            s = checksum_of(false, s, &f[..8]);
            s = checksum_of(false, s, &data);
            f.extend(s[0].to_be_bytes());
            f.extend(s[1].to_be_bytes());
            f.extend(data);
            h.extend(f);
        }
        h
    }

    #[test]
    fn a_log_is_read_to_its_last_valid_frame() {
        let bytes = log([7, 9], 3, &[(2, false), (5, true), (2, true), (9, false)]);
        let h = header(&bytes).unwrap();
        assert_eq!((h.page_size, h.checkpoint_seq, h.salts), (512, 3, [7, 9]));
        let mut c = std::io::Cursor::new(&bytes);
        let (frames, read) = scan(&mut c, &h, 1, h.checksum, 100).unwrap();
        assert_eq!(frames.len(), 4);
        assert_eq!(read, 4 * (24 + 512));
        assert_eq!(committed(&frames).len(), 3);
        assert_eq!(frames[1].commit, Some(2));
        // Resuming from frame 3 with frame 2's checksum.
        let (rest, _) = scan(&mut c, &h, 3, frames[1].checksum, 100).unwrap();
        assert_eq!(rest, frames[2..]);
        // A wrong chain start reads nothing.
        assert!(scan(&mut c, &h, 3, [1, 2], 100).unwrap().0.is_empty());
    }

    #[test]
    fn a_flipped_byte_or_another_generation_ends_the_log() {
        let mut bytes = log([7, 9], 3, &[(2, true), (5, true), (6, true)]);
        let h = header(&bytes).unwrap();
        let at = frame_offset(512, 2) as usize + 24 + 100;
        bytes[at] ^= 1;
        let (frames, _) = scan(&mut std::io::Cursor::new(&bytes), &h, 1, h.checksum, 9).unwrap();
        assert_eq!(frames.len(), 1);
        // A restarted log over the old one: the old frames beyond the new
        // ones keep the old salts and do not belong to the new log.
        let old = log([7, 9], 3, &[(2, true), (5, true), (6, true)]);
        let mut new = log([8, 1], 4, &[(3, true)]);
        new.extend_from_slice(&old[new.len()..]);
        let h2 = header(&new).unwrap();
        let (frames, _) = scan(&mut std::io::Cursor::new(&new), &h2, 1, h2.checksum, 9).unwrap();
        assert_eq!(frames.iter().map(|f| f.page).collect::<Vec<_>>(), [3]);
        // ...but they still continue the old chain from where it was left.
        let h1 = header(&old).unwrap();
        let (first, _) = scan(&mut std::io::Cursor::new(&old), &h1, 1, h1.checksum, 1).unwrap();
        let (tail, _) = scan(
            &mut std::io::Cursor::new(&new),
            &h1,
            2,
            first[0].checksum,
            9,
        )
        .unwrap();
        assert_eq!(tail.iter().map(|f| f.page).collect::<Vec<_>>(), [5, 6]);
        assert!(header(&bytes[..31]).is_none());
    }
}
