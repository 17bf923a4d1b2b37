//! take: source -> chunker -> hash -> (index has it?) -> packer -> store ->
//! trees -> snapshot record.
//!
//! Durability order: every pack is fsynced and indexed (ChunkWriter::finish)
//! before the record is written; the record is written atomically and last.
//! A crash at any point leaves at most unreferenced packs, which gc removes.

mod walker;

use walker::Walker;

use crate::dedup::ChunkWriter;
use crate::error::{Error, Result};
use crate::format::record::{DatabaseSummary, Skipped, Snapshot, TakeStats, RECORD_VERSION};
use crate::id::SnapshotId;
use crate::source::{self, sqlite, Excludes};
use crate::store::{Access, Repository, Store};
use chrono::{DateTime, FixedOffset};
use std::fs;
use std::path::PathBuf;
use std::time::Instant;

/// What `take` snapshots, and how.
#[derive(Clone, Debug, Default)]
pub struct TakeOptions {
    /// Files, directories and SQLite databases (found by content) to snapshot;
    /// each becomes a root named by its base name.
    pub paths: Vec<PathBuf>,
    /// Tags recorded with the snapshot (for `--tag` selection and retention).
    pub tags: Vec<String>,
    /// Globs of paths to leave out, matched on the full path and the name.
    pub excludes: Vec<String>,
    /// Recorded time; now when unset.
    pub time: Option<DateTime<FixedOffset>>,
    /// Read every file even when it looks unchanged since the parent snapshot.
    pub force_read: bool,
    /// Record unreadable files as skipped instead of failing.
    pub skip_unreadable: bool,
    /// A path that does not exist is skipped; none left is "nothing to back up".
    pub allow_missing: bool,
    /// How databases are captured (checkpoint first, check, lock wait).
    pub sqlite: sqlite::CaptureOptions,
    /// How long to wait for another snap process to release the store.
    pub lock_wait: crate::store::LockWait,
    /// Read, chunk and compress as a take would, and write nothing (no
    /// pack, no record, no checkpoint of a database): `TakeReport` then
    /// says what would be read and stored.
    pub dry_run: bool,
}

/// What `take` did.
#[derive(Debug)]
pub struct TakeReport {
    /// None when there was nothing to back up (`allow_missing`).
    pub id: Option<SnapshotId>,
    /// The record written, with its figures and database checks.
    pub snapshot: Option<Snapshot>,
    /// What the caller should be told (skipped files, files that changed
    /// while read, leftover journals, failed checks).
    pub warnings: Vec<String>,
    /// A dry run's files and databases that would be read (unchanged files
    /// are not), with their bytes. Its `snapshot` is the record that would
    /// be written: `stats.added` estimates the pack bytes (entries
    /// compressed as a take would, with their header records).
    pub would_read: Vec<(String, u64)>,
}

impl TakeReport {
    /// False when a database image failed its check (the snapshot is kept).
    pub fn ok(&self) -> bool {
        self.snapshot.as_ref().is_none_or(|s| s.checks_ok())
    }
}

/// Snapshots `opts.paths` into `store`: every live SQLite database found is
/// captured consistently through SQLite, everything else is chunked; the
/// record is written last, after every chunk it names is durable.
///
/// ```no_run
/// let store = snap::Store::open_or_init("/var/backups/snap")?;
/// let report = snap::take(&store, &snap::TakeOptions {
///     paths: vec!["/srv/app/data".into()],
///     tags: vec!["pre-migration".into()],
///     ..Default::default()
/// })?;
/// if !report.ok() {
///     eprintln!("a database image failed its check: {:?}", report.warnings);
/// }
/// # Ok::<(), snap::Error>(())
/// ```
pub fn take(store: &Store, opts: &TakeOptions) -> Result<TakeReport> {
    let start = Instant::now();
    let mut warnings = Vec::new();
    let roots = check_paths(opts, &mut warnings)?;
    if roots.is_empty() {
        warnings.push("nothing to back up".into());
        return Ok(report(None, None, warnings, Vec::new()));
    }
    let dry = opts.dry_run;
    // A dry run reads beside other commands and checkpoints no database.
    let dry_opts = dry.then(|| {
        let mut o = opts.clone();
        o.sqlite.checkpoint = false;
        o
    });
    let opts = dry_opts.as_ref().unwrap_or(opts);
    let mut repo = match dry {
        true => store.repository(Access::Read, "take (dry run)", opts.lock_wait.0)?,
        false => store.repository(Access::Write, "take", opts.lock_wait.0)?,
    };
    compact(&mut repo, &mut warnings, dry);
    let index_before = repo.index_bytes();
    let paths: Vec<String> = roots.iter().map(|p| p.to_string_lossy().into()).collect();
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let parent = find_parent(store, &paths, &host)?;
    note_parent(store, parent.as_ref().map(|p| &p.0));
    let walked = walk(&repo, opts, &roots, parent.as_ref().map(|p| &p.1), warnings)?;
    let Walked {
        tree,
        written,
        mut stats,
        skipped,
        databases,
        mut warnings,
        would_read,
    } = walked;
    compact(&mut repo, &mut warnings, dry);
    // What the store grew by, the index included (compacted).
    stats.added = written.added + repo.index_bytes().saturating_sub(index_before);
    stats.added_raw = written.added_raw;
    stats.chunks_added = written.chunks_added;
    stats.duration_ms = start.elapsed().as_millis() as u64;
    let snapshot = Snapshot {
        version: RECORD_VERSION,
        time: opts
            .time
            .unwrap_or_else(|| chrono::Local::now().fixed_offset()),
        host,
        paths,
        tags: opts.tags.clone(),
        tree,
        parent: parent.map(|(id, _)| id),
        stats,
        skipped,
        databases,
        excludes: opts.excludes.clone(),
        point: None,
    };
    if dry {
        return Ok(report(
            None,
            Some(snapshot),
            warnings,
            would_read.unwrap_or_default(),
        ));
    }
    // The record is written last: only now is every chunk it names durable.
    let id = repo.write_snapshot(&snapshot)?;
    // The catalog's commit grew the file again; compacted, it is the size
    // `stats.added` counted.
    compact(&mut repo, &mut warnings, false);
    Ok(report(Some(id), Some(snapshot), warnings, Vec::new()))
}

/// What a walk of the roots stored and saw.
struct Walked {
    tree: Vec<crate::id::ChunkId>,
    written: crate::dedup::WriteStats,
    stats: TakeStats,
    skipped: Vec<Skipped>,
    databases: Vec<DatabaseSummary>,
    warnings: Vec<String>,
    would_read: Option<Vec<(String, u64)>>,
}

/// Walks `roots` into `repo` (a dry run into nothing) against the parent's
/// top tree. On any failure (a full disk, a signal, bad input met part
/// way) the packs written so far are undone: a take that records nothing
/// leaves nothing behind.
fn walk(
    repo: &Repository,
    opts: &TakeOptions,
    roots: &[PathBuf],
    parent: Option<&Snapshot>,
    warnings: Vec<String>,
) -> Result<Walked> {
    let dry = opts.dry_run;
    let excludes = Excludes::new(&opts.excludes)?;
    let mut w = Walker {
        writer: match dry {
            true => ChunkWriter::dry(repo)?,
            false => ChunkWriter::new(repo)?,
        },
        would_read: dry.then(Vec::new),
        reader: repo,
        excludes: &excludes,
        opts,
        stats: TakeStats::default(),
        skipped: Vec::new(),
        databases: Vec::new(),
        warnings,
        progress: repo.store().progress().clone(),
        frames: Vec::new(),
    };
    w.progress
        .start("take", Some(source::estimate(roots, w.excludes)));
    let walked = w.walk(roots, parent);
    w.progress.finish();
    let (tree, written) = match walked {
        Ok(done) => done,
        Err(e) => return Err(abandoned(w.writer, e)),
    };
    Ok(Walked {
        tree,
        written,
        stats: w.stats,
        skipped: w.skipped,
        databases: w.databases,
        warnings: w.warnings,
        would_read: w.would_read,
    })
}

fn report(
    id: Option<SnapshotId>,
    snapshot: Option<Snapshot>,
    warnings: Vec<String>,
    would_read: Vec<(String, u64)>,
) -> TakeReport {
    TakeReport {
        id,
        snapshot,
        warnings,
        would_read,
    }
}

/// Compacts the index (not in a dry run). Before a take (a gc's frees can
/// be moved only by a new writer) and after its last commit: redb doubles
/// the file when a commit finds it full, so a take that ended in a commit
/// would leave it twice its size. A failure costs bytes only: a warning.
fn compact(repo: &mut Repository, warnings: &mut Vec<String>, dry: bool) {
    if dry {
        return;
    }
    if let Err(e) = repo.compact() {
        warnings.push(format!("the index was not compacted ({e})"));
    }
}

fn note_parent(store: &Store, parent: Option<&SnapshotId>) {
    store.progress().note(match parent {
        Some(id) => format!(
            "into store {}; parent snapshot {} (files unchanged since are not read again)",
            store.root().display(),
            &id.to_hex()[..12]
        ),
        None => format!(
            "into store {}; no earlier snapshot of these paths: every file is read",
            store.root().display()
        ),
    });
}

/// A take that failed part way: its packs are undone, and the error says
/// what was left (an interruption always says so).
fn abandoned(writer: ChunkWriter, e: Error) -> Error {
    let undone = writer.abandon();
    if undone.is_nothing() && !matches!(e, Error::Interrupted) {
        return e;
    }
    e.stopped(format!("no snapshot was recorded; {}", undone.describe()))
}

/// Absolute, existing roots with distinct base names; nothing is written yet,
/// so bad input changes nothing.
fn check_paths(opts: &TakeOptions, warnings: &mut Vec<String>) -> Result<Vec<PathBuf>> {
    let mut roots: Vec<PathBuf> = Vec::new();
    for p in &opts.paths {
        let abs = std::path::absolute(p).map_err(Error::io("resolve", p))?;
        match fs::symlink_metadata(&abs) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && opts.allow_missing => {
                warnings.push(format!("{} does not exist: skipped", p.display()));
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Refused {
                    message: format!("{} does not exist; nothing was recorded", p.display()),
                    option: "allow_missing",
                })
            }
            Err(e) => return Err(Error::io("stat", p)(e)),
        }
        if abs.file_name().is_some() && roots.iter().any(|r| r.file_name() == abs.file_name()) {
            return Err(Error::Invalid(format!(
                "two paths share the base name {:?}; snapshot them separately",
                abs.file_name().unwrap_or_default()
            )));
        }
        roots.push(abs);
    }
    if roots.is_empty() && !opts.allow_missing {
        return Err(Error::Invalid("no path to snapshot was given".into()));
    }
    Ok(roots)
}

/// The newest snapshot of the same paths from this host: its unchanged files
/// are not read again.
fn find_parent(
    store: &Store,
    paths: &[String],
    host: &str,
) -> Result<Option<(SnapshotId, Snapshot)>> {
    Ok(store
        .snapshots()?
        .into_iter()
        .rev()
        .find(|(_, s)| s.paths == paths && s.host == host))
}
