//! Which pages changed between two points, learned from the WAL without
//! holding anything: the previous point's place in the log and the new
//! read transaction's place (`wal::Position`) bound the frames to read, and
//! every frame is checked by its salts and its checksum chain. Whatever
//! cannot be proven is `Change::Unknown`, and the point reads every page.
//!
//! Invariant: a `Change::Pages` set holds every page written by a commit
//! between the two places (it may hold more: a superset only costs reads).

pub use crate::format::record::LogAt;
use crate::source::wal::{self, Header, Position};
use std::collections::BTreeSet;
use std::path::Path;

/// What changed since the previous point.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing was committed.
    Nothing,
    /// These pages (1-based) may have changed; no other did.
    Pages(BTreeSet<u32>),
    /// Not known, for this reason: read every page.
    Unknown(String),
}

/// The answer of one look at the log.
#[derive(Debug)]
pub(crate) struct Look {
    pub change: Change,
    /// Where the new point stands, when the log file agrees with SQLite.
    pub at: Option<LogAt>,
    /// Bytes of the log read.
    pub read: u64,
}

/// Looks at the log `wal` from a read transaction standing at `now`
/// (inside it: the log cannot restart under a reader of its frames) after
/// a point that stood at `prev`.
pub fn look(wal: &Path, prev: Option<&LogAt>, now: Position) -> Look {
    let mut read = 0;
    let looked = std::fs::File::open(wal)
        .map_err(|e| format!("the log could not be read ({e})"))
        .and_then(|mut f| look_in(&mut f, prev, now, &mut read));
    match looked {
        Ok((change, at)) => Look {
            change,
            at: Some(at),
            read,
        },
        Err(why) => Look {
            change: Change::Unknown(why),
            at: None,
            read,
        },
    }
}

/// The change and the proven place; Err when the place is not proven.
fn look_in(
    f: &mut std::fs::File,
    prev: Option<&LogAt>,
    now: Position,
    read: &mut u64,
) -> Result<(Change, LogAt), String> {
    let h = read_header(f, read)?;
    // Before its first frame a restarted log's header is not yet written.
    let in_file = now.last > 0 || h.salts == now.salts;
    if !in_file && now.salts[0] != h.salts[0].wrapping_add(1) {
        return Err("the log file does not match SQLite's view of it".into());
    }
    let at = LogAt {
        seq: h.checkpoint_seq.wrapping_add(!in_file as u32),
        salts: now.salts,
        last: now.last,
        checksum: now.checksum,
        page_size: h.page_size,
        big_endian: h.big_endian,
    };
    // The common case, costing only the new frames: the same generation,
    // its chain continued from the previous point to SQLite's checksum.
    let same = prev.filter(|p| p.salts == now.salts && p.seq == at.seq && p.last <= now.last);
    if let Some(p) = same.filter(|p| p.page_size == h.page_size) {
        if let Ok(new) = proven(f, &h, p.last, p.checksum, now, read) {
            return Ok(match new.is_empty() {
                true => (Change::Nothing, at),
                false => (Change::Pages(new.iter().map(|fr| fr.page).collect()), at),
            });
        }
    }
    // Otherwise the generation's frames from its first prove the place.
    let new = proven(f, &h, 0, h.checksum, now, read)?;
    let change = match prev {
        None => Change::Unknown("no earlier place in the log to follow from (the first look, or the previous point had none)".into()),
        Some(_) if same.is_some() => {
            Change::Unknown("the log's frames differ from those the previous point saw".into())
        }
        Some(p) => after_restart(f, p, &h, now, &new, read).unwrap_or_else(Change::Unknown),
    };
    Ok((change, at))
}

/// Frames `after + 1 ..= now.last` of `h`'s log chained from `chain`,
/// ending at `now`'s checksum (which also proves `Position`'s layout).
fn proven(
    f: &mut std::fs::File,
    h: &Header,
    after: u32,
    chain: [u32; 2],
    now: Position,
    read: &mut u64,
) -> Result<Vec<wal::Frame>, String> {
    let new = frames(f, h, after + 1, chain, now.last - after, read)?;
    let end = new.last().map_or(chain, |fr| fr.checksum);
    if now.last > 0 && (h.salts != now.salts || end != now.checksum) {
        return Err("the log file does not match SQLite's view of it".into());
    }
    Ok(new)
}

/// The pages changed between `prev` and `now` across one restart of the
/// log (`new`: the new generation's frames), or why that is not known.
fn after_restart(
    f: &mut std::fs::File,
    prev: &LogAt,
    h: &Header,
    now: Position,
    new: &[wal::Frame],
    read: &mut u64,
) -> Result<Change, String> {
    if prev.page_size != h.page_size {
        return Err("the page size changed".into());
    }
    let in_file = h.salts == now.salts;
    let seq = h.checkpoint_seq.wrapping_add(!in_file as u32);
    if now.salts[0] != prev.salts[0].wrapping_add(1) || seq != prev.seq.wrapping_add(1) {
        return Err("the log restarted more than once between two looks".into());
    }
    // The old generation's tail after `prev` is still in the file beyond
    // the new frames, unless the new generation reached it.
    let old = Header {
        salts: prev.salts,
        checkpoint_seq: prev.seq,
        ..*h
    };
    let (tail, _) = wal::scan(f, &old, prev.last + 1, prev.checksum, u32::MAX)
        .map_err(|e| format!("the log could not be read ({e})"))?;
    *read += (tail.len() as u64 + 1) * (wal::FRAME_HEADER as u64 + h.page_size as u64);
    // The tail ends at a whole frame that is not the old generation's, never
    // at the file's end: a log truncated (a TRUNCATE checkpoint, or
    // journal_size_limit) ends where its old frames were cut off.
    let after = prev.last + 1 + tail.len() as u32;
    let len = f.metadata().map_or(0, |m| m.len());
    if len < wal::frame_offset(h.page_size, after + 1) {
        return Err(
            "the log was truncated after the previous point (its old frames are gone)".into(),
        );
    }
    // Measured after the tail was read: the new generation only grows, and
    // frame `extent + 1` may be being written as this reads.
    let extent = match in_file {
        true => {
            frames(f, h, now.last + 1, now.checksum, u32::MAX, read)?.len() as u64 + now.last as u64
        }
        false => 0,
    };
    if extent + 1 > prev.last as u64 {
        return Err(
            "the log restarted and its new frames overwrote the old ones before they were seen"
                .into(),
        );
    }
    // A second restart rewrites the header before its first frame.
    if in_file && read_header(f, read)? != *h {
        return Err("the log restarted more than once between two looks".into());
    }
    Ok(Change::Pages(
        tail.iter().chain(new).map(|fr| fr.page).collect(),
    ))
}

fn read_header(f: &mut std::fs::File, read: &mut u64) -> Result<Header, String> {
    use std::io::{Read, Seek};
    let mut b = [0u8; wal::HEADER];
    f.rewind()
        .and_then(|_| f.read_exact(&mut b))
        .map_err(|_| "the log has no header (it was truncated or deleted)".to_string())?;
    *read += b.len() as u64;
    wal::header(&b).ok_or_else(|| "the log's header is not valid".into())
}

/// Frames `from..` of `h`'s log chained from `prev`: exactly `want` of them
/// ending at `now`'s checksum when `want` is a count, or as many as belong.
fn frames(
    f: &mut std::fs::File,
    h: &Header,
    from: u32,
    prev: [u32; 2],
    want: u32,
    read: &mut u64,
) -> Result<Vec<wal::Frame>, String> {
    let (frames, n) = wal::scan(f, h, from, prev, want)
        .map_err(|e| format!("the log could not be read ({e})"))?;
    *read += n;
    if want != u32::MAX && frames.len() as u32 != want {
        return Err(format!(
            "the log holds {} of the {want} frames SQLite reads",
            frames.len()
        ));
    }
    Ok(frames)
}

#[cfg(test)]
mod tests;
