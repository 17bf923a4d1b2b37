//! verify: every selected snapshot's trees decode, every chunk it reaches is
//! indexed and its pack exists; with `read_data`, every pack those snapshots
//! use is read whole and every entry re-hashed, and every database image is
//! restored to a temporary file and checked with `integrity_check` and
//! `foreign_key_check`. Problems are collected and named, never fixed.

use crate::error::Result;
use crate::format::tree::{Node, NodeKind};
use crate::id::{ChunkId, PackId, SnapshotId};
use crate::source::sqlite;
use crate::store::{packs, Store, StoreReader};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Snapshot specs (ids, prefixes, `latest`); empty means all.
    pub snapshots: Vec<String>,
    pub read_data: bool,
    /// Like `read_data`, for this share (0..=1) of the packs in use.
    pub sample: Option<f64>,
    pub lock_wait: Duration,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    pub snapshots: u64,
    pub chunks: u64,
    pub packs_read: u64,
    pub databases_checked: u64,
    pub problems: Vec<Problem>,
    pub duration_ms: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct Problem {
    pub snapshot: Option<String>,
    pub path: Option<String>,
    pub pack: Option<String>,
    pub detail: String,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

struct Checker<'a> {
    reader: StoreReader<'a>,
    store: &'a Store,
    read_data: bool,
    seen_chunks: HashSet<ChunkId>,
    /// Packs in use -> a file that uses it (for naming problems).
    packs: HashMap<PackId, (SnapshotId, String)>,
    report: VerifyReport,
}

pub fn verify(store: &Store, opts: &VerifyOptions) -> Result<VerifyReport> {
    let start = Instant::now();
    let ids = if opts.snapshots.is_empty() {
        store.snapshot_ids()?
    } else {
        opts.snapshots
            .iter()
            .map(|s| store.resolve(s))
            .collect::<Result<_>>()?
    };
    let lock = store.lock("verify", opts.lock_wait)?;
    let index = store.open_index(&lock)?;
    let mut c = Checker {
        reader: StoreReader::new(store, &index)?,
        store,
        read_data: opts.read_data || opts.sample.is_some(),
        seen_chunks: HashSet::new(),
        packs: HashMap::new(),
        report: VerifyReport::default(),
    };
    for id in ids {
        c.report.snapshots += 1;
        if let Err(e) = c.snapshot(&id) {
            c.problem(Some(id), None, None, e.to_string());
        }
    }
    if opts.read_data || opts.sample.is_some() {
        let share = if opts.read_data {
            1.0
        } else {
            opts.sample.unwrap_or(1.0).clamp(0.0, 1.0)
        };
        let limit = (share * 65536.0).ceil() as u32;
        let mut packs: Vec<_> = c
            .packs
            .clone()
            .into_iter()
            .filter(|(p, _)| (u16::from_be_bytes([p.0[0], p.0[1]]) as u32) < limit)
            .collect();
        packs.sort();
        for (pack, (snap, path)) in packs {
            c.report.packs_read += 1;
            let checked = packs::verify_pack(store, &pack, |base| c.reader.chunk(base));
            if let Err(e) = checked {
                c.problem(Some(snap), Some(path), Some(pack), e.to_string());
            }
        }
    }
    let mut report = c.report;
    report.duration_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

impl Checker<'_> {
    fn problem(
        &mut self,
        snap: Option<SnapshotId>,
        path: Option<String>,
        pack: Option<PackId>,
        detail: String,
    ) {
        self.report.problems.push(Problem {
            snapshot: snap.map(|s| s.to_hex()),
            path,
            pack: pack.map(|p| p.to_hex()),
            detail,
        });
    }

    fn snapshot(&mut self, id: &SnapshotId) -> Result<()> {
        let snap = self.store.load_snapshot(id)?;
        self.chunks(id, "(top tree)", &snap.tree);
        let top = self.reader.tree(&snap.tree)?;
        for node in &top.nodes {
            self.node(id, &node.name_lossy(), node);
        }
        Ok(())
    }

    fn node(&mut self, snap: &SnapshotId, path: &str, node: &Node) {
        match &node.kind {
            NodeKind::File { chunks } => self.chunks(snap, path, chunks),
            NodeKind::Symlink { .. } => {}
            NodeKind::Dir { tree } => {
                // A subtree already checked in full is not walked again.
                if tree.iter().all(|c| self.seen_chunks.contains(c)) && !tree.is_empty() {
                    return;
                }
                self.chunks(snap, path, tree);
                match self.reader.tree(tree) {
                    Ok(t) => {
                        for child in &t.nodes {
                            self.node(snap, &format!("{path}/{}", child.name_lossy()), child);
                        }
                    }
                    Err(e) => self.problem(Some(*snap), Some(path.into()), None, e.to_string()),
                }
            }
            NodeKind::Database(db) => {
                let fresh = db.chunks.iter().any(|c| !self.seen_chunks.contains(c));
                self.chunks(snap, path, &db.chunks);
                if self.read_data && fresh {
                    self.report.databases_checked += 1;
                    if let Err(e) = self.check_database(&db.chunks) {
                        self.problem(Some(*snap), Some(path.into()), None, e);
                    }
                }
            }
        }
    }

    fn chunks(&mut self, snap: &SnapshotId, path: &str, chunks: &[ChunkId]) {
        for c in chunks {
            if !self.seen_chunks.insert(*c) {
                continue;
            }
            self.report.chunks += 1;
            match self.reader.index.get(c) {
                Ok(Some(loc)) => {
                    if !self.packs.contains_key(&loc.pack) {
                        // A remote view's index was built from the remote's listing.
                        if self.store.remote().is_none()
                            && !self.store.pack_path(&loc.pack).exists()
                        {
                            self.problem(
                                Some(*snap),
                                Some(path.into()),
                                Some(loc.pack),
                                "pack is missing".into(),
                            );
                        }
                        self.packs.insert(loc.pack, (*snap, path.into()));
                    }
                }
                Ok(None) => self.problem(
                    Some(*snap),
                    Some(path.into()),
                    None,
                    format!("chunk {c} is not in the index"),
                ),
                Err(e) => self.problem(Some(*snap), Some(path.into()), None, e.to_string()),
            }
        }
    }

    /// Restores the image to a temporary file and runs the full checks.
    fn check_database(&self, chunks: &[ChunkId]) -> std::result::Result<(), String> {
        let mut tmp =
            tempfile::NamedTempFile::new_in(self.store.tmp_dir()).map_err(|e| e.to_string())?;
        for c in chunks {
            let data = self.reader.chunk(c).map_err(|e| e.to_string())?;
            tmp.write_all(&data).map_err(|e| e.to_string())?;
        }
        tmp.flush().map_err(|e| e.to_string())?;
        let conn = sqlite::open_image(tmp.path()).map_err(|e| e.to_string())?;
        for pragma in ["integrity_check", "foreign_key_check"] {
            let r = sqlite::run_check(&conn, pragma).map_err(|e| e.to_string())?;
            if r != "ok" {
                return Err(format!("database image fails {pragma}: {r}"));
            }
        }
        Ok(())
    }
}
