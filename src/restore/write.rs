//! Writing restored nodes: directories, files and symlinks, each under a
//! temporary name beside its target and renamed into place.

use super::journal::TEMP_PREFIXES;
use super::sparse::SparseWriter;
use super::{database, RestoreReport};
use crate::durable::{self, Op};
use crate::error::{Error, Result};
use crate::format::tree::{Node, NodeKind};
use crate::id::ChunkId;
use crate::source::walk::Dir;
use crate::store::StoreReader;
use rayon::prelude::*;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, FileTimes, Permissions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct Writer<'r> {
    pub reader: &'r StoreReader,
    pub report: &'r mut RestoreReport,
    /// Replace what is in the way.
    pub force: bool,
    /// Remove entries of restored directories that the snapshot lacks.
    pub prune: bool,
    /// Directories entered so far on the way down (bounded by `MAX_DEPTH`).
    pub depth: usize,
    /// Files restored so far by identity (device, inode at take): a file of
    /// the same identity and content is restored as a hard link to it.
    pub links: HashMap<(u64, u64), (PathBuf, ChunkId)>,
    /// Include/exclude patterns, as the walk goes down.
    pub filter: Option<super::filter::Walk>,
}

/// A file's identity at take, if it has one.
fn link_key(n: &Node) -> Option<(u64, u64)> {
    matches!(n.kind, NodeKind::File { .. })
        .then_some((n.dev, n.inode))
        .filter(|k| k.1 != 0)
}

pub(crate) fn system_time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

/// A temporary file beside `target`, removed on drop unless persisted;
/// its name carries this process's pid (`journal::sweep` removes those of
/// processes that are gone).
pub(crate) fn temp_beside(target: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(&format!("{}{}-", TEMP_PREFIXES[0], std::process::id()))
        .tempfile_in(dir)
        .map_err(Error::io("create temporary file in", dir))?;
    durable::observe(|| Op::Create(tmp.path().to_path_buf()))?;
    Ok(tmp)
}

/// A name beside `target` for a link made before its rename into place.
fn link_beside(target: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    target.with_file_name(format!("{}{}-{n}", TEMP_PREFIXES[1], std::process::id()))
}

impl Writer<'_> {
    /// Restores `node` into the real directory `dir` (reached by a short
    /// path however deep: `source::walk::Dir`).
    pub fn node(&mut self, dir: &Dir, node: &Node) -> Result<()> {
        crate::cancel::check()?;
        let target = dir.child(OsStr::from_bytes(&node.name));
        match &node.kind {
            NodeKind::Dir { tree } => self.dir(dir, &target, node, tree),
            NodeKind::File { chunks } => {
                self.file(&target, node, chunks)?;
                self.report.files += 1;
                self.report.bytes += node.size;
                Ok(())
            }
            NodeKind::Symlink { target: link } => {
                // A directory in the way cannot be renamed over: it goes
                // first (restore replaces only with --force or in place).
                if fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
                    self.clear_way(&target, true)?;
                }
                let tmp_name = link_beside(&target);
                std::os::unix::fs::symlink(OsStr::from_bytes(link), &tmp_name)
                    .map_err(Error::io("create symlink", &tmp_name))?;
                if !self.force && fs::symlink_metadata(&target).is_ok() {
                    let _ = fs::remove_file(&tmp_name);
                    return self.clear_way(&target, false);
                }
                fs::rename(&tmp_name, &target).map_err(|e| {
                    let _ = fs::remove_file(&tmp_name);
                    Error::io("rename into place", &target)(e)
                })?;
                let t = filetime::FileTime::from_system_time(system_time(node.mtime));
                let _ = filetime::set_symlink_file_times(&target, t, t);
                let _ = std::os::unix::fs::lchown(&target, Some(node.uid), Some(node.gid));
                Ok(())
            }
            NodeKind::Database(db) | NodeKind::ListedDatabase(db) => {
                database::restore(self, &target, node, db)?;
                self.report.databases += 1;
                self.report.bytes += db.page_count * db.page_size as u64;
                Ok(())
            }
        }
    }

    fn dir(&mut self, parent: &Dir, target: &Path, node: &Node, tree: &[ChunkId]) -> Result<()> {
        if self.depth >= crate::format::tree::MAX_DEPTH {
            return Err(Error::Invalid(format!(
                "{}: the snapshot nests directories more than {} deep; restore a deeper path of it",
                target.display(),
                crate::format::tree::MAX_DEPTH
            )));
        }
        let mut tree = self.reader.tree(tree)?;
        if let Some(f) = self.filter.as_mut() {
            f.enter(node, &mut tree);
        }
        match fs::symlink_metadata(target) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                self.clear_way(target, false)?;
                fs::create_dir(target).map_err(Error::io("create directory", target))?;
            }
            Err(_) => fs::create_dir(target).map_err(Error::io("create directory", target))?,
        }
        let here = parent
            .enter(OsStr::from_bytes(&node.name))
            .map_err(Error::io("open directory", target))?;
        if self.prune {
            for entry in fs::read_dir(target).map_err(Error::io("read", target))? {
                let name = entry.map_err(Error::io("read", target))?.file_name();
                if !tree.nodes.iter().any(|n| n.name == name.as_bytes()) {
                    self.clear_way(&here.child(&name), true)?;
                }
            }
        }
        let others = self.files(&here, &tree.nodes)?;
        self.depth += 1;
        for child in others {
            self.node(&here, child)?;
        }
        self.depth -= 1;
        set_dir_meta(target, node)?;
        self.report.dirs += 1;
        if let Some(f) = self.filter.as_mut() {
            f.leave();
        }
        Ok(())
    }

    /// Restores the ordinary files among `nodes` into `here`; returns the
    /// other nodes, for the caller to restore in order. Files are restored
    /// in parallel, so one file's fsync overlaps the next one's decoding.
    fn files<'n>(&mut self, here: &Dir, nodes: &'n [Node]) -> Result<Vec<&'n Node>> {
        let (files, others): (Vec<&Node>, Vec<&Node>) = nodes
            .iter()
            .partition(|n| matches!(n.kind, NodeKind::File { .. }));
        // A file whose identity was restored already becomes a hard link.
        let mut seen = std::collections::HashSet::new();
        let (files, linked): (Vec<&Node>, Vec<&Node>) = files.into_iter().partition(|n| {
            link_key(n).is_none_or(|k| !self.links.contains_key(&k) && seen.insert(k))
        });
        let this = &*self;
        files
            .par_iter()
            .map(|n| match &n.kind {
                NodeKind::File { chunks } => {
                    this.file(&here.child(OsStr::from_bytes(&n.name)), n, chunks)
                }
                _ => unreachable!("partitioned"),
            })
            .collect::<Result<Vec<()>>>()?;
        for n in &files {
            if let (Some(k), NodeKind::File { chunks }) = (link_key(n), &n.kind) {
                // By its real path: `here`'s short one lasts only while it is open.
                let path = here.real().join(OsStr::from_bytes(&n.name));
                self.links.insert(k, (path, ChunkId::of_list(chunks)));
            }
        }
        for n in &linked {
            let NodeKind::File { chunks } = &n.kind else {
                continue;
            };
            let path = here.child(OsStr::from_bytes(&n.name));
            match link_key(n).and_then(|k| self.links.get(&k)) {
                Some((src, key)) if *key == ChunkId::of_list(chunks) => self.link(src, &path)?,
                _ => self.file(&path, n, chunks)?,
            }
        }
        self.report.files += (files.len() + linked.len()) as u64;
        self.report.bytes += files.iter().map(|n| n.size).sum::<u64>();
        Ok(others)
    }

    /// Writes one file beside its target and renames it into place.
    fn file(&self, target: &Path, node: &Node, chunks: &[ChunkId]) -> Result<()> {
        crate::cancel::check()?;
        let tmp = temp_beside(target)?;
        let ids = crate::store::reader::ids(chunks);
        self.write_chunks(&tmp, node.size, ids, target)?;
        self.finish_file(tmp, target, node)
    }

    /// `dst` appears, atomically, as a hard link to the restored file `src`.
    fn link(&self, src: &Path, dst: &Path) -> Result<()> {
        if fs::symlink_metadata(dst).is_ok_and(|m| m.is_dir()) {
            self.clear_way(dst, true)?;
        }
        let tmp = link_beside(dst);
        fs::hard_link(src, &tmp).map_err(Error::io("link", &tmp))?;
        fs::rename(&tmp, dst).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::io("rename into place", dst)(e)
        })
    }

    /// Removes what stands at `path` (never following a symlink) when allowed.
    pub(crate) fn clear_way(&self, path: &Path, dirs_too: bool) -> Result<()> {
        let Ok(meta) = fs::symlink_metadata(path) else {
            return Ok(());
        };
        if meta.is_dir() && !meta.file_type().is_symlink() {
            if !(self.force && dirs_too) {
                return Err(Error::Invalid(format!(
                    "{} is a directory where the snapshot has something else; it was left as it is",
                    path.display()
                )));
            }
            return fs::remove_dir_all(path).map_err(Error::io("remove", path));
        }
        if !self.force {
            return Err(Error::Refused {
                message: format!("{} is in the way", path.display()),
                option: "force",
            });
        }
        fs::remove_file(path).map_err(Error::io("remove", path))
    }

    /// Writes the chunks (`size` bytes) into `tmp` in order, each verified
    /// against its id first, through a `SparseWriter`.
    pub(crate) fn write_chunks(
        &self,
        tmp: &tempfile::NamedTempFile,
        size: u64,
        chunks: impl Iterator<Item = Result<ChunkId>>,
        target: &Path,
    ) -> Result<()> {
        let mut out = SparseWriter::new(tmp.as_file(), tmp.path(), size);
        self.reader
            .copy_chunks(chunks, &mut out, self.reader.packs.store().progress())
            .map_err(|e| match e {
                Error::Corrupt { what, detail } => {
                    Error::corrupt(format!("{what} (file {})", target.display()), detail)
                }
                Error::Io { op, source, .. } => Error::Io {
                    op,
                    path: target.to_path_buf(),
                    source,
                },
                other => other,
            })?;
        out.flush().map_err(Error::io("write", target))
    }

    /// fsync, mode, owner and mtime, then the rename that makes it appear.
    pub(crate) fn finish_file(
        &self,
        tmp: tempfile::NamedTempFile,
        target: &Path,
        node: &Node,
    ) -> Result<()> {
        let f = tmp.as_file();
        f.set_permissions(Permissions::from_mode(node.mode & 0o7777))
            .map_err(Error::io("set permissions of", target))?;
        let _ = std::os::unix::fs::fchown(f, Some(node.uid), Some(node.gid));
        f.set_times(FileTimes::new().set_modified(system_time(node.mtime)))
            .map_err(Error::io("set mtime of", target))?;
        f.sync_all().map_err(Error::io("fsync", target))?;
        if fs::symlink_metadata(target).is_ok_and(|m| m.is_dir()) {
            self.clear_way(target, true)?;
        }
        durable::observe(|| Op::Rename(tmp.path().to_path_buf(), target.to_path_buf()))?;
        tmp.persist(target)
            .map_err(|e| Error::io("rename into place", target)(e.error))?;
        Ok(())
    }
}

/// A restored directory's mode, owner (when allowed) and mtime, then its
/// entries made durable.
fn set_dir_meta(target: &Path, node: &Node) -> Result<()> {
    fs::set_permissions(target, Permissions::from_mode(node.mode & 0o7777))
        .map_err(Error::io("set permissions of", target))?;
    let _ = std::os::unix::fs::lchown(target, Some(node.uid), Some(node.gid));
    filetime::set_file_mtime(
        target,
        filetime::FileTime::from_system_time(system_time(node.mtime)),
    )
    .map_err(Error::io("set mtime of", target))?;
    crate::durable::fsync_dir(target)?;
    Ok(())
}
