//! Reading a snapshot without restoring it: its entries (`ls`), one file to
//! a stream (`dump`, a database as its image or as SQL), a directory as a
//! tar stream, and the paths whose names match a glob across snapshots
//! (`find`). Readers beside restore, under the readers' shared lock.

use super::archive::{write_tar, TarReport};
use super::lookup;
use crate::error::{Error, Result};
use crate::format::record::DatabaseSummary;
use crate::format::tree::{Node, NodeKind};
use crate::id::SnapshotId;
use crate::select::Selection;
use crate::store::{LockWait, Store};
use std::io::Write;

/// One entry of a snapshot, as `ls` lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Entry {
    /// Its path inside the snapshot (`data/sub/a.txt`).
    pub path: String,
    /// `file`, `dir`, `link` or `db`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Mode bits as taken (type bits included).
    pub mode: u32,
    /// Plain bytes (a database: its image).
    pub size: u64,
    /// Modification time, RFC 3339 to the second.
    pub mtime: String,
    /// A symlink's target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// A database's capture and check, as the snapshot record has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSummary>,
}

/// The entries of snapshot `id` (or of `path` inside it, and below), depth
/// first in name order.
pub fn ls(
    store: &Store,
    id: &SnapshotId,
    path: Option<&str>,
    wait: LockWait,
) -> Result<Vec<Entry>> {
    let snapshot = store.load_snapshot(id)?;
    let reader = store.reading("ls", wait.0)?;
    let top = reader.tree(&snapshot.tree)?;
    let (prefix, nodes) = match path {
        None => (String::new(), top.nodes),
        Some(p) => {
            let p = snapshot.inner_path(p)?;
            let node = lookup(&reader, &top, &p)?;
            let p = p.trim_matches('/');
            let parent = p.rsplit_once('/').map_or("", |(d, _)| d).to_string();
            (parent, vec![node])
        }
    };
    let mut rows = Vec::new();
    reader.walk(
        &prefix,
        nodes,
        |path, node| {
            rows.push(entry(path, node));
            Ok(true)
        },
        |_, e| Err(e),
    )?;
    Ok(rows)
}

fn entry(path: &str, node: &Node) -> Entry {
    let mtime = chrono::DateTime::from_timestamp_nanos(node.mtime)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut e = Entry {
        path: path.to_string(),
        kind: "file",
        mode: node.mode,
        size: node.size,
        mtime,
        target: None,
        database: None,
    };
    match &node.kind {
        NodeKind::File { .. } => {}
        NodeKind::Dir { .. } => e.kind = "dir",
        NodeKind::Symlink { target } => {
            e.kind = "link";
            e.target = Some(String::from_utf8_lossy(target).into());
        }
        NodeKind::Database(db) | NodeKind::ListedDatabase(db) => {
            e.kind = "db";
            e.database = Some(crate::source::check::summary(path.to_string(), db));
        }
    }
    e
}

/// Writes one file of snapshot `id` to `out`: its content (a database as
/// its image), or with `sql` a database as SQL text (schema and rows).
pub fn dump(
    store: &Store,
    id: &SnapshotId,
    path: &str,
    sql: bool,
    out: &mut (impl Write + Send),
    wait: LockWait,
) -> Result<()> {
    let snapshot = store.load_snapshot(id)?;
    let reader = store.reading("dump", wait.0)?;
    let top = reader.tree(&snapshot.tree)?;
    let node = lookup(&reader, &top, &snapshot.inner_path(path)?)?;
    let none = crate::progress::Reporter::none();
    match (&node.kind, node.kind.database(), sql) {
        (NodeKind::File { chunks }, _, false) => {
            reader.copy_chunks(crate::store::reader::ids(chunks), out, &none)?;
        }
        (_, Some((_, list)), false) => {
            reader.copy_chunks(reader.units(list), out, &none)?;
        }
        (_, Some((_, list)), true) => {
            let image = crate::diff::image(&reader, list)?;
            crate::diff::rows::dump_sql(image.path(), out)?;
        }
        (_, None, true) => return Err(Error::Invalid(format!("{path} is not a database"))),
        _ => return Err(Error::Invalid(format!("{path} is not a file"))),
    }
    out.flush().map_err(Error::io("write", "the output"))
}

/// Writes `path` of snapshot `id` (a directory, a file, or `/` for every
/// root) and everything under it to `out` as a tar stream.
pub fn dump_tar(
    store: &Store,
    id: &SnapshotId,
    path: &str,
    out: impl Write,
    wait: LockWait,
) -> Result<TarReport> {
    let snapshot = store.load_snapshot(id)?;
    let reader = store.reading("dump", wait.0)?;
    let top = reader.tree(&snapshot.tree)?;
    let nodes = if path.trim_matches('/').is_empty() {
        top.nodes
    } else {
        vec![lookup(&reader, &top, &snapshot.inner_path(path)?)?]
    };
    write_tar(&reader, nodes, out)
}

/// A path that `find` matched.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Found {
    /// The snapshot (full id).
    pub snapshot: String,
    /// When it was taken.
    pub time: chrono::DateTime<chrono::FixedOffset>,
    /// The path inside it.
    pub path: String,
    /// Plain bytes.
    pub size: u64,
}

/// Every path in the selected snapshots whose name or path matches the
/// glob `pattern`, snapshot by snapshot (oldest first), depth first; and
/// the snapshot records that are corrupt (not searched), each named.
pub fn find(
    store: &Store,
    pattern: &str,
    sel: &Selection,
    wait: LockWait,
) -> Result<(Vec<Found>, Vec<String>)> {
    let glob = globset::Glob::new(pattern)
        .map_err(|e| Error::Invalid(format!("{pattern}: {e}")))?
        .compile_matcher();
    let (all, bad) = store.snapshots_checked()?;
    let snaps: Vec<_> = all.into_iter().filter(|(_, s)| sel.matches(s)).collect();
    let reader = store.reading("find", wait.0)?;
    let mut rows = Vec::new();
    for (id, s) in &snaps {
        let top = reader.tree(&s.tree)?.nodes;
        reader.walk(
            "",
            top,
            |path, node| {
                if glob.is_match(node.name_lossy()) || glob.is_match(path) {
                    rows.push(Found {
                        snapshot: id.to_hex(),
                        time: s.time,
                        path: path.to_string(),
                        size: node.size,
                    });
                }
                Ok(true)
            },
            |_, e| Err(e),
        )?;
    }
    Ok((rows, bad))
}
