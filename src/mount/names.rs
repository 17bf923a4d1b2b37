//! The top of a mount, as pure naming: which synthetic directories and
//! links show the selected snapshots. Only `ids/<id>` holds a snapshot's
//! files; every other name is a relative symlink to it, so each snapshot
//! has one tree of inodes however many names reach it.
//!
//! ```text
//! ids/<12 hex>/<root>/...          the snapshot's files
//! snapshots/<time>    -> ../ids/<12 hex>
//! hosts/<host>/<time> -> ../../ids/<12 hex>
//! tags/<tag>/<time>   -> ../../ids/<12 hex>
//! latest              -> ids/<12 hex>   (the newest that is not an undo snapshot)
//! ```

use crate::format::record::Snapshot;
use crate::id::SnapshotId;
use std::collections::HashMap;

/// Hex digits of a snapshot's directory name (as `snap list` shows it).
pub(crate) const SHORT_ID: usize = 12;

/// What a name at the top leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Leaf {
    /// The directory of snapshot `i` of the list given to `layout`.
    Snapshot(usize),
    /// A relative symlink.
    Link(String),
}

/// Every leaf under the mount point as (path components, leaf). The
/// directories `ids`, `snapshots`, `hosts` and `tags` are always there;
/// names are unique (a second snapshot at the same second gets `-2`).
pub(crate) fn layout(
    snaps: &[(SnapshotId, Snapshot)],
) -> (Vec<&'static str>, Vec<(Vec<String>, Leaf)>) {
    let tops = vec!["ids", "snapshots", "hosts", "tags"];
    let mut out = Vec::new();
    let mut used: HashMap<Vec<String>, usize> = HashMap::new();
    let mut unique = |mut path: Vec<String>| {
        let n = used.entry(path.clone()).or_default();
        *n += 1;
        if *n > 1 {
            let last = path.last_mut().expect("a path has a name");
            last.push_str(&format!("-{n}"));
        }
        path
    };
    for (i, (id, s)) in snaps.iter().enumerate() {
        let hex = short(id);
        let time = s.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        out.push((vec!["ids".to_string(), hex.clone()], Leaf::Snapshot(i)));
        let link = |up: &str| Leaf::Link(format!("{up}ids/{hex}"));
        out.push((unique(vec!["snapshots".into(), time.clone()]), link("../")));
        out.push((
            unique(vec!["hosts".into(), component(&s.host), time.clone()]),
            link("../../"),
        ));
        for tag in &s.tags {
            out.push((
                unique(vec!["tags".into(), component(tag), time.clone()]),
                link("../../"),
            ));
        }
    }
    let newest = snaps
        .iter()
        .rev()
        .find(|(_, s)| !crate::select::is_undo(s))
        .or(snaps.last());
    if let Some((id, _)) = newest {
        out.push((
            vec!["latest".into()],
            Leaf::Link(format!("ids/{}", short(id))),
        ));
    }
    (tops, out)
}

fn short(id: &SnapshotId) -> String {
    id.to_hex()[..SHORT_ID].to_string()
}

/// A host name or tag as one path component (`/` and NUL cannot be in one).
fn component(s: &str) -> String {
    let c: String = s
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    match c.as_str() {
        "" | "." | ".." => format!("_{c}"),
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(time: &str, host: &str, tags: &[&str]) -> Snapshot {
        let mut s: Snapshot = serde_json::from_value(serde_json::json!({
            "version": 1, "time": time, "host": host, "paths": ["/d"], "tree": [],
            "stats": crate::format::record::TakeStats::default(),
        }))
        .expect("a record");
        s.tags = tags.iter().map(|t| t.to_string()).collect();
        s
    }

    #[test]
    fn every_snapshot_has_one_directory_and_links_to_it() {
        let a = SnapshotId([1; 32]);
        let b = SnapshotId([2; 32]);
        let c = SnapshotId([3; 32]);
        let snaps = vec![
            (a, snap("2026-12-05T10:00:00Z", "web/1", &["daily"])),
            (b, snap("2026-12-05T10:00:00Z", "web/1", &[])),
            (c, snap("2026-12-05T11:00:00Z", "db", &["pre-restore"])),
        ];
        let (_, leaves) = layout(&snaps);
        let find = |p: &[&str]| {
            leaves
                .iter()
                .find(|(path, _)| path.iter().map(String::as_str).eq(p.iter().copied()))
                .map(|(_, l)| l.clone())
        };
        assert_eq!(find(&["ids", "010101010101"]), Some(Leaf::Snapshot(0)));
        assert_eq!(
            find(&["snapshots", "2026-12-05T10:00:00Z-2"]),
            Some(Leaf::Link("../ids/020202020202".into()))
        );
        assert_eq!(
            find(&["hosts", "web_1", "2026-12-05T10:00:00Z"]),
            Some(Leaf::Link("../../ids/010101010101".into()))
        );
        assert!(find(&["tags", "daily", "2026-12-05T10:00:00Z"]).is_some());
        // `latest` passes over the undo snapshot, as `snap restore latest` does.
        assert_eq!(
            find(&["latest"]),
            Some(Leaf::Link("ids/020202020202".into()))
        );
        assert_eq!(component(".."), "_..");
    }
}
