//! restore: snapshot -> trees -> index -> packs -> decompress -> verify id ->
//! files, each appearing atomically.
//!
//! Safety invariants:
//! - every name comes from a decoded tree, so it is one safe path component
//!   (`format::tree::check_name`); paths are only ever built by joining such
//!   names onto the target, so nothing is written outside it;
//! - a directory on the way is entered only if it is a real directory: a
//!   symlink in the way is never followed (it is refused, or replaced with
//!   `--force`);
//! - a file is written under a temporary name beside its target, fsynced and
//!   renamed into place; a chunk that fails its id check stops the restore,
//!   and the temporary file is removed, so no half-written file appears.

pub mod archive;
pub mod browse;
mod database;
mod filter;
mod in_place;
pub mod journal;
mod plan;
mod sparse;
mod write;

use crate::error::{Error, Result};
use crate::format::tree::{Node, NodeKind, Tree};
use crate::store::{Store, StoreReader};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What `restore` puts back, and where.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Full id, unique prefix (>= 6 hex digits), `latest` or `latest:PATH`.
    pub snapshot: String,
    /// Which snapshots `latest` means.
    pub selection: crate::Selection,
    /// Each root reappears as `to/<base name>`.
    pub to: Option<PathBuf>,
    /// Restore only this path inside the snapshot (`root/sub/file`).
    pub path: Option<String>,
    /// Overwrite existing targets (and databases another process has open).
    pub force: bool,
    /// Put every root (or only `path`) back where it was taken from,
    /// snapshotting what is there first (so the rollback can itself be
    /// undone). Entries of restored directories that the snapshot lacks are
    /// removed (they are in the undo snapshot).
    pub in_place: bool,
    /// Only paths matching one of these globs (on the path inside the
    /// snapshot, `root/sub/file`, or the name), and what is under them.
    /// Not with `in_place`.
    pub include: Vec<String>,
    /// Leave out paths matching one of these globs, and what is under them.
    /// Not with `in_place`.
    pub exclude: Vec<String>,
    /// How long to wait for gc to release the store.
    pub lock_wait: crate::store::LockWait,
}

/// What `restore` did.
#[derive(Debug, Default, serde::Serialize)]
pub struct RestoreReport {
    /// The snapshot restored (full id).
    pub snapshot: String,
    /// Files, directories and databases written.
    pub files: u64,
    /// Directories restored.
    pub dirs: u64,
    /// Databases restored (each checked before it appeared).
    pub databases: u64,
    /// Plain bytes restored.
    pub bytes: u64,
    /// Wall time.
    pub duration_ms: u64,
    /// With `--in-place`: the snapshot of what was there before (before the
    /// first attempt, when this run finished an interrupted one).
    pub undo_snapshot: Option<String>,
    /// When this run finished an interrupted in-place restore: the snapshot
    /// of the part-old, part-restored state it found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interim_snapshot: Option<String>,
    /// The paths that were (re)placed.
    pub targets: Vec<String>,
    /// Packs missing or damaged in the store that were read from its
    /// fallback (a remote) instead: `repair packs` heals them.
    pub fell_back: Vec<String>,
    /// Chunks whose index row was damaged, read where the pack headers put
    /// them (`repair index` rebuilds the index).
    #[serde(skip_serializing_if = "is_zero")]
    pub damaged_index_rows: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A root or sub-path to restore, and the directory it goes into.
struct Job {
    node: Node,
    into: PathBuf,
    /// Where the node is inside the snapshot (its parent's path; empty for a root).
    prefix: PathBuf,
    /// With include/exclude patterns: what of the node is restored.
    walk: Option<filter::Walk>,
}

/// Restores a snapshot (or one path of it) into a directory, or in place;
/// every chunk is verified and every file appears atomically.
///
/// ```no_run
/// let store = snap::Store::open("/var/backups/snap")?;
/// // Roll back only the database, keeping an undo snapshot of what is there now.
/// let report = snap::restore(&store, &snap::RestoreOptions {
///     snapshot: "latest:/srv/app/data/app.db".into(),
///     path: Some("data/app.db".into()),
///     in_place: true,
///     ..Default::default()
/// })?;
/// println!("undo with snapshot {:?}", report.undo_snapshot);
/// # Ok::<(), snap::Error>(())
/// ```
pub fn restore(store: &Store, opts: &RestoreOptions) -> Result<RestoreReport> {
    let start = Instant::now();
    let id = store.resolve_in(&opts.snapshot, &opts.selection)?;
    let snap = store.load_snapshot(&id)?;
    let mut report = RestoreReport {
        snapshot: id.to_hex(),
        ..Default::default()
    };
    let replace = opts.force || opts.in_place;
    let filter = filter::PathFilter::new(&opts.include, &opts.exclude)?.map(std::sync::Arc::new);
    if filter.is_some() && opts.in_place {
        return Err(Error::Invalid(
            "include and exclude patterns restore part of a tree into a new place; \
             in place, restore one path instead"
                .into(),
        ));
    }
    // Plan and check every target under one lock; nothing is written yet.
    let (jobs, total) = {
        let reader = store.reading("restore", opts.lock_wait.0)?;
        let mut jobs = plan::plan(&reader, &snap, opts)?;
        if let Some(f) = &filter {
            jobs = filter::keep_jobs(f, &reader, jobs)?;
        }
        let mut total = 0;
        for job in &jobs {
            total += check_depth(&reader, &job.node)?;
            let target = job.into.join(std::ffi::OsStr::from_bytes(&job.node.name));
            check_target(&target, replace)?;
            if !opts.force {
                for db in database::databases_in(&reader, &job.node, &target)? {
                    database::refuse_if_open(&db)?;
                }
            }
            report.targets.push(target.to_string_lossy().into());
        }
        (jobs, total)
    };
    let journal = match opts.in_place {
        true => Some(in_place::prepare(store, opts, &mut report)?),
        false => None,
    };
    let existed: Vec<bool> = report
        .targets
        .iter()
        .map(|t| fs::symlink_metadata(t).is_ok())
        .collect();
    let written = write_jobs(store, &jobs, total, opts, &mut report);
    store.progress().finish();
    match (written, journal) {
        (Ok(()), Some(entry)) => journal::end(store, &entry)?,
        (Ok(()), None) => {}
        (Err(e), Some(entry)) => {
            return Err(e.stopped(format!(
                "{} files were restored before it stopped; {}",
                report.files,
                entry.describe()
            )))
        }
        (Err(e), None) => return Err(in_place::undo_partial(e, &report, &existed)),
    }
    report.fell_back = store.fell_back().iter().map(|p| p.to_hex()).collect();
    report.damaged_index_rows = store.bad_rows();
    report.duration_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

/// Writes every job; stops at the first failure (or a signal).
fn write_jobs(
    store: &Store,
    jobs: &[Job],
    total: u64,
    opts: &RestoreOptions,
    report: &mut RestoreReport,
) -> Result<()> {
    let reader = store.reading("restore", opts.lock_wait.0)?;
    store.progress().start("restore", Some(total));
    let mut w = write::Writer {
        reader: &reader,
        report,
        force: opts.force || opts.in_place,
        prune: opts.in_place,
        depth: 0,
        links: Default::default(),
        filter: None,
    };
    for job in jobs {
        w.filter = job.walk.clone();
        store.progress().note(format!(
            "restoring {} into {}",
            String::from_utf8_lossy(&job.node.name),
            job.into.display()
        ));
        fs::create_dir_all(&job.into).map_err(Error::io("create directory", &job.into))?;
        w.node(&crate::source::walk::Dir::new(&job.into), &job.node)?;
        crate::durable::fsync_dir(&job.into)?;
    }
    Ok(())
}

/// The node at `sub` (`root/dir/file`) inside the top tree.
pub(crate) fn lookup(reader: &StoreReader, top: &Tree, sub: &str) -> Result<Node> {
    let mut tree = top.clone();
    let parts: Vec<&str> = sub
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let missing = || Error::NotFound(format!("{sub} is not in the snapshot"));
    for (i, part) in parts.iter().enumerate() {
        let node = find(&tree, part.as_bytes()).ok_or_else(missing)?.clone();
        if i + 1 == parts.len() {
            return Ok(node);
        }
        match &node.kind {
            NodeKind::Dir { tree: ids } => tree = reader.tree(ids)?,
            _ => return Err(missing()),
        }
    }
    Err(missing())
}

/// The node named `name` in `tree`.
pub fn find<'t>(tree: &'t Tree, name: &[u8]) -> Option<&'t Node> {
    tree.nodes.iter().find(|n| n.name == name)
}

/// Refuses, before anything is written, a tree nested deeper than restore
/// recreates (`MAX_DEPTH`). Returns the bytes the tree holds.
fn check_depth(reader: &StoreReader, node: &Node) -> Result<u64> {
    let max = crate::format::tree::MAX_DEPTH;
    let mut total = 0;
    reader.walk(
        "",
        vec![node.clone()],
        |path, n| {
            if path.matches('/').count() >= max {
                return Err(Error::Invalid(format!(
                    "the snapshot nests directories more than {max} deep (at {}…); nothing was restored",
                    &path[..path.len().min(80)]
                )));
            }
            total += match &n.kind {
                NodeKind::File { .. } => n.size,
                NodeKind::Database(d) | NodeKind::ListedDatabase(d) => {
                    d.page_count * d.page_size as u64
                }
                NodeKind::Dir { .. } | NodeKind::Symlink { .. } => 0,
            };
            Ok(true)
        },
        |_, e| Err(e),
    )?;
    Ok(total)
}

/// Refuses an existing target (a file, or a non-empty directory) unless
/// `force`: bad input changes nothing.
fn check_target(target: &Path, force: bool) -> Result<()> {
    let Ok(meta) = fs::symlink_metadata(target) else {
        return Ok(());
    };
    let empty_dir = meta.is_dir()
        && fs::read_dir(target)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
    if !empty_dir && !force {
        return Err(Error::Refused {
            message: format!("{} already exists (nothing was changed)", target.display()),
            option: "force",
        });
    }
    Ok(())
}
