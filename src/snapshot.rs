//! take: source -> chunker -> hash -> (index has it?) -> packer -> store ->
//! trees -> snapshot record.
//!
//! Durability order: every pack is fsynced and indexed (ChunkWriter::finish)
//! before the record is written; the record is written atomically and last.
//! A crash at any point leaves at most unreferenced packs, which gc removes.

use crate::error::{Error, Result};
use crate::format::record::{DatabaseSummary, Skipped, Snapshot, TakeStats, RECORD_VERSION};
use crate::format::tree::{Node, NodeKind, Tree};
use crate::id::SnapshotId;
use crate::source::{self, sqlite, Excludes};
use crate::store::{ChunkWriter, Index, Store, StoreReader};
use chrono::{DateTime, FixedOffset};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
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
}

impl TakeReport {
    /// False when a database image failed its check (the snapshot is kept).
    pub fn ok(&self) -> bool {
        self.snapshot.as_ref().is_none_or(|s| s.checks_ok())
    }
}

struct Walker<'a> {
    writer: ChunkWriter<'a>,
    reader: StoreReader<'a>,
    excludes: Excludes,
    opts: &'a TakeOptions,
    stats: TakeStats,
    skipped: Vec<Skipped>,
    databases: Vec<DatabaseSummary>,
    warnings: Vec<String>,
    progress: crate::progress::Reporter,
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
        return Ok(TakeReport {
            id: None,
            snapshot: None,
            warnings,
        });
    }
    let lock = store.lock("take", opts.lock_wait.0)?;
    let mut index = store.open_index(&lock)?;
    let index_len = || fs::metadata(store.index_path()).map_or(0, |m| m.len());
    // Compacted before (a gc's frees can be moved only by a new writer) and
    // after the last commit: redb doubles the file when a commit finds it
    // full, so a take that ended in a commit would leave it twice its size.
    let compact = |index: &mut Index, warnings: &mut Vec<String>| {
        if let Err(e) = index.compact() {
            warnings.push(format!("the index was not compacted ({e})"));
        }
    };
    compact(&mut index, &mut warnings);
    let index_before = index_len();
    let paths: Vec<String> = roots.iter().map(|p| p.to_string_lossy().into()).collect();
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let parent = find_parent(store, &paths, &host)?;
    let mut w = Walker {
        writer: ChunkWriter::new(store, &index)?,
        reader: StoreReader::new(store, &index)?,
        excludes: Excludes::new(&opts.excludes)?,
        opts,
        stats: TakeStats::default(),
        skipped: Vec::new(),
        databases: Vec::new(),
        warnings,
        progress: store.progress().clone(),
    };
    w.progress
        .start("take", Some(source::estimate(&roots, &w.excludes)));
    // On any failure (a full disk, a signal, bad input met part way) the
    // packs written so far are undone: a take that records nothing leaves
    // nothing behind.
    let (tree, written) = match w.walk(&roots, parent.as_ref().map(|p| &p.1)) {
        Ok(done) => done,
        Err(e) => {
            w.progress.finish();
            let undone = w.writer.abandon();
            if undone.is_nothing() && !matches!(e, Error::Interrupted) {
                return Err(e);
            }
            return Err(e.stopped(format!("no snapshot was recorded; {}", undone.describe())));
        }
    };
    w.progress.finish();
    let Walker {
        mut stats,
        skipped,
        databases,
        mut warnings,
        reader,
        writer,
        ..
    } = w;
    // Their read transactions would keep the compaction from moving pages.
    drop((reader, writer));
    compact(&mut index, &mut warnings);
    // What the store grew by, the index included (compacted).
    stats.added = written.added + index_len().saturating_sub(index_before);
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
    };
    // The record is written last: only now is every chunk it names durable.
    let id = store.write_snapshot(&snapshot)?;
    // The snapshot exists now; the catalog is a cache a rebuild restores.
    if let Err(e) = index.add_snapshot(&id, snapshot.time.timestamp()) {
        warnings.push(format!("the index catalog was not updated ({e})"));
    }
    // The catalog's commit grew the file again; compacted, it is the size
    // `stats.added` counted.
    compact(&mut index, &mut warnings);
    Ok(TakeReport {
        id: Some(id),
        snapshot: Some(snapshot),
        warnings,
    })
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

fn find<'t>(tree: &'t Tree, name: &[u8]) -> Option<&'t Node> {
    tree.nodes
        .binary_search_by(|n| n.name.as_slice().cmp(name))
        .ok()
        .map(|i| &tree.nodes[i])
}

impl Walker<'_> {
    /// Stores every root and the top tree; returns the top tree's chunks and
    /// what the writer added, every chunk durable and indexed.
    fn walk(
        &mut self,
        roots: &[PathBuf],
        parent: Option<&Snapshot>,
    ) -> Result<(Vec<crate::id::ChunkId>, crate::store::writer::WriteStats)> {
        let parent_top = match parent {
            Some(p) => Some(self.reader.tree(&p.tree)?),
            None => None,
        };
        let mut top = Tree::default();
        for root in roots {
            let name = root
                .file_name()
                .map(|n| n.as_bytes().to_vec())
                .unwrap_or(b"root".to_vec());
            let old = parent_top.as_ref().and_then(|t| find(t, &name));
            let meta = fs::symlink_metadata(root).map_err(Error::io("stat", root))?;
            if let Some(node) = self.node(root, name, &meta, old, "")? {
                top.nodes.push(node);
            }
        }
        top.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        // Each list is held once at the end: a 10 GiB database's is 5 MB.
        drop(parent_top);
        let encoded = crate::format::tree::encode_tree(&top);
        drop(top);
        let tree = self.writer.put_buffer(&encoded)?;
        drop(encoded);
        Ok((tree, self.writer.finish()?))
    }

    /// The node for `path`, or None when it is skipped.
    fn node(
        &mut self,
        path: &Path,
        name: Vec<u8>,
        meta: &fs::Metadata,
        old: Option<&Node>,
        rel: &str,
    ) -> Result<Option<Node>> {
        crate::cancel::check()?;
        let rel = if rel.is_empty() {
            String::from_utf8_lossy(&name).into_owned()
        } else {
            format!("{rel}/{}", String::from_utf8_lossy(&name))
        };
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            match self.dir(path, old, &rel)? {
                Some(tree) => NodeKind::Dir { tree },
                None => return Ok(None),
            }
        } else if ft.is_symlink() {
            let target = fs::read_link(path).map_err(Error::io("read link", path))?;
            NodeKind::Symlink {
                target: target.as_os_str().as_bytes().to_vec(),
            }
        } else if ft.is_file() {
            // -wal, -shm and -journal belong to their database's image.
            if source::sqlite_sibling(path).is_some() {
                return Ok(None);
            }
            if source::is_sqlite(path) {
                return self.database(path, name, meta, old, rel).map(Some);
            }
            if meta.len() > 0 && source::named_like_a_database(path) {
                self.warnings.push(format!(
                    "{}: named like a database but not SQLite (no SQLite header): stored as a plain file",
                    path.display()
                ));
            }
            match self.file(path, meta, old)? {
                Some(chunks) => NodeKind::File { chunks },
                None => return Ok(None),
            }
        } else {
            self.warnings.push(format!(
                "{}: not a file, directory or symlink; skipped",
                path.display()
            ));
            return Ok(None);
        };
        Ok(Some(source::node(name, meta, kind)))
    }

    fn unreadable(&mut self, path: &Path, e: std::io::Error) -> Result<()> {
        if !self.opts.skip_unreadable {
            return Err(Error::Refused {
                message: format!(
                    "cannot read {}: {e}; no snapshot was recorded",
                    path.display()
                ),
                option: "skip_unreadable",
            });
        }
        self.warnings
            .push(format!("{}: {e}; skipped", path.display()));
        self.skipped.push(Skipped {
            path: path.to_string_lossy().into(),
            reason: e.to_string(),
        });
        Ok(())
    }

    fn dir(
        &mut self,
        path: &Path,
        old: Option<&Node>,
        rel: &str,
    ) -> Result<Option<Vec<crate::id::ChunkId>>> {
        if rel.matches('/').count() >= crate::format::tree::MAX_DEPTH {
            return Err(Error::Invalid(format!(
                "{} is nested more than {} directories deep; snap does not record trees that deep (nothing was recorded)",
                path.display(),
                crate::format::tree::MAX_DEPTH
            )));
        }
        let entries = match fs::read_dir(path).and_then(|d| d.collect::<std::io::Result<Vec<_>>>())
        {
            Ok(e) => e,
            Err(e) => return self.unreadable(path, e).map(|_| None),
        };
        let old_tree = match old.map(|n| &n.kind) {
            Some(NodeKind::Dir { tree }) => Some(self.reader.tree(tree)?),
            _ => None,
        };
        let mut names: Vec<_> = entries.into_iter().map(|e| e.file_name()).collect();
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut tree = Tree::default();
        for name in names {
            let child = path.join(&name);
            if self.excludes.matches(&child) {
                continue;
            }
            if crate::restore::journal::temp_owner(name.as_bytes()).is_some() {
                self.warnings.push(format!(
                    "{}: a temporary file of an interrupted restore; not stored",
                    child.display()
                ));
                continue;
            }
            let meta = match fs::symlink_metadata(&child) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("stat", &child)(e)),
            };
            let name = name.as_bytes().to_vec();
            let old_child = old_tree.as_ref().and_then(|t| find(t, &name));
            if let Some(node) = self.node(&child, name, &meta, old_child, rel)? {
                tree.nodes.push(node);
            }
        }
        self.stats.dirs += 1;
        self.writer
            .put_buffer(&crate::format::tree::encode_tree(&tree))
            .map(Some)
    }

    fn file(
        &mut self,
        path: &Path,
        meta: &fs::Metadata,
        old: Option<&Node>,
    ) -> Result<Option<Vec<crate::id::ChunkId>>> {
        self.stats.files += 1;
        self.stats.size += meta.len();
        if let (false, Some(old)) = (self.opts.force_read, old) {
            if let NodeKind::File { chunks } = &old.kind {
                if source::unchanged(old, meta) && self.all_stored(chunks)? {
                    self.progress.advance(meta.len());
                    return Ok(Some(chunks.clone()));
                }
            }
        }
        let file = match fs::File::open(path) {
            Ok(f) => f,
            Err(e) => return self.unreadable(path, e).map(|_| None),
        };
        // Read at most the size seen at open: a file that grows while it is
        // read (a log being appended to) must not be read until the disk is full.
        let size = meta.len();
        let mut chunks = Vec::new();
        let mut read = 0u64;
        for chunk in
            crate::chunker::file_chunks(std::io::Read::take(&file, size), self.writer_params())
        {
            let data = match chunk {
                Ok(d) => d,
                Err(e) => return self.unreadable(path, e).map(|_| None),
            };
            read += data.len() as u64;
            self.stats.read += data.len() as u64;
            self.progress.advance(data.len() as u64);
            chunks.push(self.writer.put(data)?);
        }
        let now = file.metadata().ok();
        let changed = read != size
            || now
                .is_none_or(|m| m.len() != size || source::mtime_ns(&m) != source::mtime_ns(meta));
        if changed {
            // As tar does: keep what was read, and say the file changed meanwhile.
            self.warnings.push(format!(
                "{}: file changed while it was read; {read} of its {size} bytes at open were stored",
                path.display()
            ));
        }
        Ok(Some(chunks))
    }

    fn writer_params(&self) -> crate::store::ChunkerParams {
        self.reader.packs.store().config().chunker
    }

    fn all_stored(&self, chunks: &[crate::id::ChunkId]) -> Result<bool> {
        for c in chunks {
            if !self.writer.has(c)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn database(
        &mut self,
        path: &Path,
        name: Vec<u8>,
        meta: &fs::Metadata,
        old: Option<&Node>,
        rel: String,
    ) -> Result<Node> {
        if sqlite::hot_journal(path) {
            self.warnings.push(format!(
                "{}-journal is left over from an interrupted write; SQLite rolls it back on open, and it is not stored",
                path.display()
            ));
        }
        let parent = old.and_then(|n| n.kind.database());
        let image = sqlite::capture(path, &self.opts.sqlite, &mut self.writer, parent)?;
        self.stats.databases += 1;
        self.stats.size += image.db.page_count * image.db.page_size as u64;
        self.stats.read += image.bytes_read;
        self.progress.advance(meta.len());
        self.warnings.extend(image.warnings);
        self.databases.push(sqlite::summary(rel, &image.db));
        let mut node = source::node(name, meta, NodeKind::ListedDatabase(Box::new(image.db)));
        node.size = meta.len();
        Ok(node)
    }
}
