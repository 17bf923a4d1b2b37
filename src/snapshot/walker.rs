//! take's side of the one directory walk (`source::walk::walk`, which a
//! live diff shares): every root into tree nodes, files chunked, databases
//! captured through SQLite, each directory's tree stored as chunks as it
//! is left.

use super::TakeOptions;
use crate::dedup::ChunkWriter;
use crate::dedup::WriteStats;
use crate::error::{Error, Result};
use crate::format::record::{DatabaseSummary, Skipped, Snapshot, TakeStats};
use crate::format::tree::{Node, NodeKind, Tree};
use crate::id::ChunkId;
use crate::source::walk::{self, Dir, Entry, Kind, Visit};
use crate::source::{self, sqlite, Excludes};
use crate::store::StoreReader;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub(super) struct Walker<'a> {
    pub writer: ChunkWriter<'a>,
    pub reader: &'a StoreReader,
    pub excludes: &'a Excludes,
    pub opts: &'a TakeOptions,
    pub stats: TakeStats,
    pub skipped: Vec<Skipped>,
    pub databases: Vec<DatabaseSummary>,
    pub warnings: Vec<String>,
    pub progress: crate::progress::Reporter,
    /// In a dry run, each file and database read, with its bytes.
    pub would_read: Option<Vec<(String, u64)>>,
    /// The directories being built, the top tree first.
    pub frames: Vec<Frame>,
}

/// A directory being built: its nodes so far, and its tree in the parent
/// snapshot (whose nodes tell which files are unchanged).
#[derive(Default)]
pub(super) struct Frame {
    tree: Tree,
    old: Option<Tree>,
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
    pub fn walk(
        &mut self,
        roots: &[PathBuf],
        parent: Option<&Snapshot>,
    ) -> Result<(Vec<ChunkId>, WriteStats)> {
        let old = match parent {
            Some(p) => Some(self.reader.tree(&p.tree)?),
            None => None,
        };
        self.frames.push(Frame {
            tree: Tree::default(),
            old,
        });
        let excludes = self.excludes;
        for root in roots {
            let entry = walk::root(root)?;
            let parent_dir = Dir::new(root.parent().unwrap_or(Path::new("/")));
            walk::walk(&parent_dir, &entry, "", excludes, self)?;
        }
        let Frame { tree: mut top, old } = self.frames.pop().expect("the top frame");
        top.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        // Each list is held once at the end: a 10 GiB database's is 5 MB.
        drop(old);
        let encoded = crate::format::tree::encode_tree(&top);
        drop(top);
        let tree = self.writer.put_buffer(&encoded)?;
        drop(encoded);
        Ok((tree, self.writer.finish()?))
    }

    /// The node for `e` (anything but a directory), or None when it is
    /// skipped.
    fn node(&mut self, e: &Entry, old: Option<&Node>, rel: &str) -> Result<Option<Node>> {
        let name = e.name.as_bytes().to_vec();
        let kind = match e.kind {
            Kind::Dir => unreachable!("the walk enters directories"),
            Kind::Symlink => {
                let target = fs::read_link(&e.at).map_err(Error::io("read link", &e.real))?;
                NodeKind::Symlink {
                    target: target.as_os_str().as_bytes().to_vec(),
                }
            }
            Kind::Database => return self.database(e, name, old, rel.to_string()).map(Some),
            Kind::File => {
                if e.meta.len() > 0 && source::named_like_a_database(&e.real) {
                    self.warnings.push(format!(
                        "{}: named like a database but not SQLite (no SQLite header): stored as a plain file",
                        e.real.display()
                    ));
                }
                match self.file(e, old)? {
                    Some(chunks) => NodeKind::File { chunks },
                    None => return Ok(None),
                }
            }
            Kind::Other => {
                self.warnings.push(format!(
                    "{}: not a file, directory or symlink; skipped",
                    e.real.display()
                ));
                return Ok(None);
            }
        };
        Ok(Some(source::node(name, &e.meta, kind)))
    }

    fn skip_or_refuse(&mut self, path: &Path, e: impl std::fmt::Display) -> Result<()> {
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

    fn file(&mut self, e: &Entry, old: Option<&Node>) -> Result<Option<Vec<ChunkId>>> {
        let meta = &e.meta;
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
        if let Some(list) = self.would_read.as_mut() {
            list.push((e.real.to_string_lossy().into_owned(), meta.len()));
        }
        let file = match fs::File::open(&e.at) {
            Ok(f) => f,
            Err(err) => return self.skip_or_refuse(&e.real, err).map(|_| None),
        };
        // Read at most the size seen at open: a file that grows while it is
        // read (a log being appended to) must not be read until the disk is full.
        let size = meta.len();
        let mut chunks = Vec::new();
        let mut read = 0u64;
        let params = self.reader.packs.store().config().chunker;
        for chunk in crate::chunker::file_chunks(std::io::Read::take(&file, size), params) {
            let data = match chunk {
                Ok(d) => d,
                Err(err) => return self.skip_or_refuse(&e.real, err).map(|_| None),
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
                e.real.display()
            ));
        }
        Ok(Some(chunks))
    }

    fn all_stored(&self, chunks: &[ChunkId]) -> Result<bool> {
        for c in chunks {
            if !self.writer.has(c)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn database(
        &mut self,
        e: &Entry,
        name: Vec<u8>,
        old: Option<&Node>,
        rel: String,
    ) -> Result<Node> {
        if sqlite::hot_journal(&e.at) {
            self.warnings.push(format!(
                "{}-journal is left over from an interrupted write; SQLite rolls it back on open, and it is not stored",
                e.real.display()
            ));
        }
        let image = match self.followed(e)? {
            Some(image) => image,
            None => {
                let parent = old.and_then(|n| n.kind.database());
                sqlite::capture(&e.at, &self.opts.sqlite, &mut self.writer, parent)?
            }
        };
        self.stats.databases += 1;
        self.stats.size += image.db.page_count * image.db.page_size as u64;
        self.stats.read += image.bytes_read;
        if let Some(list) = self.would_read.as_mut() {
            list.push((e.real.to_string_lossy().into_owned(), image.bytes_read));
        }
        self.progress.advance(e.meta.len());
        self.warnings.extend(image.warnings);
        self.progress.note(format!(
            "database {}: {} pages of {} B, {} mode, {} read, {} {}",
            e.real.display(),
            image.db.page_count,
            image.db.page_size,
            image.db.journal_mode,
            indicatif::HumanBytes(image.bytes_read),
            image.db.check_kind,
            image.db.check.lines().next().unwrap_or("")
        ));
        self.databases.push(sqlite::summary(rel, &image.db));
        let mut node = source::node(name, &e.meta, NodeKind::ListedDatabase(Box::new(image.db)));
        node.size = e.meta.len();
        Ok(node)
    }

    /// The database captured from its newest point when a watcher's log
    /// place can be followed (the take then reads what changed since), or
    /// None. Not with `checkpoint` (which would cut the log the watcher
    /// follows) or in a dry run.
    fn followed(&mut self, e: &Entry) -> Result<Option<sqlite::Image>> {
        let o = &self.opts.sqlite;
        if o.no_follow || o.checkpoint || self.writer.is_dry() {
            return Ok(None);
        }
        let check = (!o.no_check).then_some(o.integrity_check);
        let store = self.writer.store();
        let Some(f) = crate::watch::take::follow(store, &mut self.writer, &e.at, check)? else {
            return Ok(None);
        };
        self.stats.check_ms += f.check_ms;
        self.progress.note(format!(
            "database {}: followed from point {} ({} of log read)",
            e.real.display(),
            f.from.short(),
            indicatif::HumanBytes(f.log_read)
        ));
        let warnings = sqlite::check_warnings(&e.real, &f.db).into_iter().collect();
        Ok(Some(sqlite::Image {
            db: f.db,
            bytes_read: f.read,
            warnings,
        }))
    }
}

impl Walker<'_> {
    /// The current directory's frame.
    fn frame(&mut self) -> &mut Frame {
        self.frames.last_mut().expect("a directory being built")
    }
}

impl Visit for Walker<'_> {
    fn leaf(&mut self, e: &Entry, rel: &str) -> Result<()> {
        // The parent's tree is lent out while the node is made (no clone).
        let old_tree = self.frame().old.take();
        let old = old_tree.as_ref().and_then(|t| find(t, e.name.as_bytes()));
        let node = self.node(e, old, rel);
        self.frame().old = old_tree;
        if let Some(node) = node? {
            self.frame().tree.nodes.push(node);
        }
        Ok(())
    }

    fn enter(&mut self, e: &Entry, _rel: &str) -> Result<bool> {
        let old = self.frame().old.as_ref();
        let old = match old
            .and_then(|t| find(t, e.name.as_bytes()))
            .map(|n| &n.kind)
        {
            Some(NodeKind::Dir { tree }) => Some(tree.clone()),
            _ => None,
        };
        let old = match old {
            Some(tree) => Some(self.reader.tree(&tree)?),
            None => None,
        };
        self.frames.push(Frame {
            tree: Tree::default(),
            old,
        });
        Ok(true)
    }

    fn unreadable(&mut self, e: &Entry, err: std::io::Error) -> Result<()> {
        self.frames.pop();
        self.skip_or_refuse(&e.real, err)
    }

    fn leave(&mut self, e: &Entry, _rel: &str) -> Result<()> {
        let Frame { tree, old } = self.frames.pop().expect("an entered directory");
        drop(old);
        self.stats.dirs += 1;
        let tree = self
            .writer
            .put_buffer(&crate::format::tree::encode_tree(&tree))?;
        let node = source::node(e.name.as_bytes().to_vec(), &e.meta, NodeKind::Dir { tree });
        self.frame().tree.nodes.push(node);
        Ok(())
    }

    fn note(&mut self, note: String) {
        self.warnings.push(note);
    }
}
