//! The plan of a restore: which node of the snapshot goes into which
//! directory (every root, or one path inside it; to a target directory or
//! back where it was taken from).

use super::{find, lookup, Job, RestoreOptions};
use crate::error::{Error, Result};
use crate::store::StoreReader;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub(super) fn plan(
    reader: &StoreReader,
    snap: &crate::format::record::Snapshot,
    opts: &RestoreOptions,
) -> Result<Vec<Job>> {
    let top = reader.tree(&snap.tree)?;
    if opts.in_place {
        return plan_in_place(reader, snap, top, opts);
    }
    let to = opts.to.clone().ok_or_else(|| {
        Error::Invalid("a restore needs a target directory (or to go in place)".into())
    })?;
    match &opts.path {
        None => Ok(top
            .nodes
            .into_iter()
            .map(|node| Job {
                node,
                into: to.clone(),
                prefix: PathBuf::new(),
                walk: None,
            })
            .collect()),
        Some(sub) => {
            let sub = snap.inner_path(sub)?;
            Ok(vec![Job {
                node: lookup(reader, &top, &sub)?,
                into: to,
                prefix: parent_of(&sub),
                walk: None,
            }])
        }
    }
}

/// The jobs of an in-place restore: each root (or only `opts.path`)
/// back where the snapshot was taken from.
fn plan_in_place(
    reader: &StoreReader,
    snap: &crate::format::record::Snapshot,
    top: crate::format::tree::Tree,
    opts: &RestoreOptions,
) -> Result<Vec<Job>> {
    if opts.to.is_some() {
        return Err(Error::Invalid(
            "an in-place restore goes where the snapshot was taken from; it takes no target directory".into(),
        ));
    }
    let origin = |name: &[u8]| -> Result<PathBuf> {
        snap.paths
            .iter()
            .map(PathBuf::from)
            .find(|p| p.file_name().map(|n| n.as_bytes()) == Some(name))
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "{} is not a root of the snapshot (it holds {})",
                    String::from_utf8_lossy(name),
                    snap.paths.join(", ")
                ))
            })
    };
    if let Some(sub) = &opts.path {
        // Only SUB goes back, beside whatever else is there now.
        let sub = snap.inner_path(sub)?;
        let parts: Vec<&str> = sub
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        let root = parts
            .first()
            .ok_or_else(|| Error::Invalid("the path inside the snapshot is empty".into()))?;
        let mut into = origin(root.as_bytes())?;
        into.pop();
        for p in &parts[..parts.len() - 1] {
            into.push(p);
        }
        return Ok(vec![Job {
            node: lookup(reader, &top, &sub)?,
            into,
            prefix: parent_of(&sub),
            walk: None,
        }]);
    }
    snap.paths
        .iter()
        .map(|p| {
            let p = Path::new(p);
            let name = p.file_name().map(|n| n.as_bytes()).unwrap_or(b"root");
            let node = find(&top, name)
                .cloned()
                .ok_or_else(|| Error::corrupt("snapshot", "a root is missing from its tree"))?;
            Ok(Job {
                node,
                into: p.parent().unwrap_or(Path::new("/")).to_path_buf(),
                prefix: PathBuf::new(),
                walk: None,
            })
        })
        .collect()
}

/// The directory `sub` (`root/dir/file`) is in, inside the snapshot.
fn parent_of(sub: &str) -> PathBuf {
    Path::new(sub.trim_matches('/'))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}
