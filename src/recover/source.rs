//! The database a recovery takes its rows from: which snapshot (`latest`
//! narrowed to the snapshots that hold the source), which database inside
//! it (the one taken from the live database's path, or one named), and its
//! image in a private temporary file.

use super::RecoverOptions;
use crate::error::{Error, Result};
use crate::format::record::Snapshot;
use crate::format::tree::{Node, NodeKind};
use crate::id::SnapshotId;
use crate::store::StoreReader;
use crate::Store;
use std::path::{Path, PathBuf};

/// The snapshot, the source's path inside it, and its image.
pub(crate) fn image(
    store: &Store,
    opts: &RecoverOptions,
    db: &Path,
) -> Result<(SnapshotId, String, tempfile::NamedTempFile)> {
    let source = opts.source.as_deref();
    let id = resolve(store, opts, db)?;
    let snap = store.load_snapshot(&id)?;
    let reader = store.reading("recover", opts.lock_wait.0)?;
    let (path, node) = database_node(&reader, &snap, &id, source, db)?;
    let (_, list) = node.kind.database().expect("a database node");
    Ok((id, path, crate::diff::image(&reader, list)?))
}

/// `latest` means the newest snapshot (within the selection) that holds
/// the source, given as a path on this machine, or else the live
/// database's path; an explicit id is taken as it is.
fn resolve(store: &Store, opts: &RecoverOptions, db: &Path) -> Result<SnapshotId> {
    if opts.snapshot != "latest" {
        return store.resolve_in(&opts.snapshot, &opts.selection);
    }
    let held = match opts.source.as_deref() {
        Some(s) => std::path::absolute(s).map_err(Error::io("resolve", s))?,
        None => db.to_path_buf(),
    };
    match store.resolve_in("latest", &opts.selection.with_path(held)) {
        // A source named as the snapshot shows it (`root/app.db`) is no
        // path on this machine: the newest snapshot in the selection.
        Err(Error::NotFound(_)) if opts.source.is_some() => {
            store.resolve_in("latest", &opts.selection)
        }
        other => other,
    }
}

/// The database node named `source` (a path as taken, or as `ls` shows
/// it), or else the one taken from `db`, with its path in the snapshot.
fn database_node(
    reader: &StoreReader,
    snap: &Snapshot,
    id: &SnapshotId,
    source: Option<&str>,
    db: &Path,
) -> Result<(String, Node)> {
    let top = reader.tree(&snap.tree)?;
    let wanted = match source {
        Some(s) => std::path::absolute(s).map_err(Error::io("resolve", s))?,
        None => db.to_path_buf(),
    };
    let mut tries: Vec<String> = snap
        .paths
        .iter()
        .map(PathBuf::from)
        .filter(|root| wanted.starts_with(root))
        .map(|root| {
            let mut rel = PathBuf::from(root.file_name().unwrap_or_default());
            rel.push(wanted.strip_prefix(&root).expect("checked prefix"));
            rel.to_string_lossy().into_owned()
        })
        .collect();
    if let Some(s) = source {
        tries.push(s.trim_start_matches("./").to_string());
    }
    for path in tries {
        if let Ok(node) = crate::restore::lookup(reader, &top, &path) {
            if node.kind.database().is_some() {
                return Ok((path, node));
            }
            return Err(Error::Invalid(format!(
                "{path} is not a SQLite database in snapshot {}",
                &id.to_hex()[..12]
            )));
        }
    }
    let named = source.map_or_else(|| db.display().to_string(), str::to_string);
    Err(Error::NotFound(format!(
        "snapshot {} does not hold {named}; its databases: {} (name one as the source)",
        &id.to_hex()[..12],
        databases(reader, top.nodes)?.join(", ")
    )))
}

/// The paths of every database in a snapshot, as `ls` shows them.
fn databases(reader: &StoreReader, top: Vec<Node>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    reader.walk(
        "",
        top,
        |path, node| {
            if matches!(
                node.kind,
                NodeKind::Database(_) | NodeKind::ListedDatabase(_)
            ) {
                out.push(path.to_string());
            }
            Ok(true)
        },
        |_, e| Err(e),
    )?;
    if out.is_empty() {
        out.push("none".into());
    }
    Ok(out)
}
