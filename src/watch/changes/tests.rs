use super::*;
use crate::source::wal::tests::log;

/// Writes `bytes` as a log file and looks at it.
fn looked(bytes: &[u8], prev: Option<&LogAt>, now: Position) -> Look {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("db-wal");
    std::fs::write(&p, bytes).unwrap();
    look(&p, prev, now)
}

/// Where a reader at frame `last` of `bytes` stands.
fn at(bytes: &[u8], last: u32) -> Position {
    let h = wal::header(bytes).unwrap();
    let mut c = std::io::Cursor::new(bytes);
    let (frames, _) = wal::scan(&mut c, &h, 1, h.checksum, last).unwrap();
    Position {
        last,
        pages: 10,
        checksum: frames.last().map_or(h.checksum, |f| f.checksum),
        salts: h.salts,
    }
}

fn log_at(bytes: &[u8], last: u32) -> LogAt {
    let l = looked(bytes, None, at(bytes, last));
    assert!(matches!(l.change, Change::Unknown(ref w) if w.starts_with("no earlier place")));
    l.at.unwrap()
}

fn pages(c: &Change) -> Vec<u32> {
    match c {
        Change::Pages(p) => p.iter().copied().collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn frames_after_the_previous_point_are_the_change() {
    let bytes = log([7, 9], 3, &[(2, true), (5, true), (8, false), (3, true)]);
    let prev = log_at(&bytes, 2);
    assert_eq!(
        pages(&looked(&bytes, Some(&prev), at(&bytes, 4)).change),
        [3, 8]
    );
    let same = looked(&bytes, Some(&prev), at(&bytes, 2));
    assert_eq!(same.change, Change::Nothing);
    // A position the file does not hold (another checksum) is not trusted.
    let mut wrong = at(&bytes, 4);
    wrong.checksum[0] ^= 1;
    assert!(matches!(
        looked(&bytes, Some(&prev), wrong).change,
        Change::Unknown(_)
    ));
}

#[test]
fn one_restart_is_followed_through_the_old_tail() {
    let old = log([7, 9], 3, &[(2, true), (5, true), (6, false), (9, true)]);
    let prev = log_at(&old, 2);
    // The restarted log wrote one frame over the old frame 1; beyond the
    // old generation's end lies a frame of an older one.
    let older = log([6, 5], 2, &[(1, true); 5]);
    let mut new = log([8, 1], 4, &[(4, true)]);
    new.extend_from_slice(&old[new.len()..]);
    new.extend_from_slice(&older[new.len()..]);
    let l = looked(&new, Some(&prev), at(&new, 1));
    assert_eq!(pages(&l.change), [4, 6, 9]);
    assert_eq!(l.at.unwrap().seq, 4);
    // Where the file ends at the old generation's last frame, it may have
    // been cut there: unknown.
    let mut cut = log([8, 1], 4, &[(4, true)]);
    cut.extend_from_slice(&old[cut.len()..]);
    assert!(matches!(
        looked(&cut, Some(&prev), at(&cut, 1)).change,
        Change::Unknown(ref w) if w.contains("truncated")
    ));
    // Two new frames reach past the previous point's frame 2: unknown.
    let mut over = log([8, 1], 4, &[(4, false), (7, true)]);
    over.extend_from_slice(&old[over.len()..]);
    over.extend_from_slice(&older[over.len()..]);
    assert!(matches!(
        looked(&over, Some(&prev), at(&over, 2)).change,
        Change::Unknown(ref w) if w.contains("overwrote")
    ));
    // A second restart (salt 1 two ahead): unknown.
    let twice = log([9, 1], 5, &[(4, true)]);
    assert!(matches!(
        looked(&twice, Some(&prev), at(&twice, 1)).change,
        Change::Unknown(ref w) if w.contains("more than once")
    ));
}

#[test]
fn a_missing_or_truncated_log_is_unknown() {
    let bytes = log([7, 9], 3, &[(2, true), (4, true)]);
    let prev = log_at(&bytes, 1);
    let l = looked(&bytes[..20], Some(&prev), at(&bytes, 2));
    assert!(matches!(l.change, Change::Unknown(ref w) if w.contains("no header")));
    let cut = wal::frame_offset(512, 2) as usize + 100;
    let l = looked(&bytes[..cut], Some(&prev), at(&bytes, 2));
    assert!(matches!(l.change, Change::Unknown(ref w) if w.contains("1 of the 2")));
    assert!(l.at.is_none());
}
