//! verify: every selected snapshot's trees decode, every chunk it reaches is
//! indexed and its pack exists; with `read_data`, every pack those snapshots
//! use is read whole and every entry re-hashed, and every database image is
//! restored to a temporary file and checked with `integrity_check` and
//! `foreign_key_check`. Problems are collected and named, never fixed.
//!
//! Verify checks at least what restore checks: trees no deeper than restore
//! recreates, and every file's and database image's size against the
//! chunks that make it. A damaged pack is named, and so is every snapshot
//! and file that uses one of its damaged chunks (`damage`).

mod damage;
mod noted;
mod sizes;

use crate::error::Result;
use crate::format::pack::PackEntry;
use crate::format::tree::{Node, NodeKind};
use crate::format::units::{UnitCursor, UnitList, LIST_IDS};
use crate::id::{ChunkId, PackId, SnapshotId};
use crate::source::sqlite;
use crate::store::{packs, Repository, Store};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::time::Instant;

/// Which snapshots `verify` checks, and how deeply.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Snapshot specs (ids, prefixes, `latest`, `latest:PATH`); empty means
    /// every snapshot in `selection`.
    pub snapshots: Vec<String>,
    /// Which snapshots `latest` and "all" mean.
    pub selection: crate::Selection,
    /// Re-read and re-hash every pack used, and check every database image.
    pub read_data: bool,
    /// Like `read_data`, for this share (0..=1) of the packs in use.
    pub sample: Option<f64>,
    /// How long to wait for gc to release the store.
    pub lock_wait: crate::store::LockWait,
}

/// What `verify` checked and what it found.
#[derive(Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    /// Snapshots checked.
    pub snapshots: u64,
    /// Distinct chunks checked (indexed, in a pack that exists).
    pub chunks: u64,
    /// Packs read whole and re-hashed.
    pub packs_read: u64,
    /// Database images restored to a temporary file and checked.
    pub databases_checked: u64,
    /// Everything wrong, each named; empty when all is well.
    pub problems: Vec<Problem>,
    /// Wall time.
    pub duration_ms: u64,
}

/// One thing `verify` found wrong, with where it was found.
#[derive(Debug, serde::Serialize)]
pub struct Problem {
    /// The snapshot affected, when one is.
    pub snapshot: Option<String>,
    /// The file inside it, when one is.
    pub path: Option<String>,
    /// The pack involved, when one is.
    pub pack: Option<String>,
    /// What is wrong.
    pub detail: String,
}

impl VerifyReport {
    /// No problem found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

struct Checker<'a> {
    reader: &'a Repository,
    store: &'a Store,
    read_data: bool,
    seen_chunks: HashSet<ChunkId>,
    /// Packs in use -> a file that uses it (for naming problems).
    packs: HashMap<PackId, (SnapshotId, String)>,
    /// Headers of the packs in use, read once each (None: unreadable).
    headers: HashMap<PackId, Option<HashMap<ChunkId, PackEntry>>>,
    /// The records checked, for naming what a damaged pack hurts.
    checked: Vec<(SnapshotId, crate::Snapshot)>,
    /// Database images whose size was checked: (their list's key, size).
    sized: HashSet<(ChunkId, u64)>,
    report: VerifyReport,
}

/// Checks snapshots: trees, index rows against pack headers, and with `read_data` every byte.
pub fn verify(store: &Store, opts: &VerifyOptions) -> Result<VerifyReport> {
    let start = Instant::now();
    let mut bad_records = Vec::new();
    let ids: Vec<SnapshotId> = if opts.snapshots.is_empty() {
        let (all, bad) = store.snapshots_checked()?;
        if opts.selection.is_empty() {
            bad_records = bad;
        }
        all.into_iter()
            .filter(|(_, s)| opts.selection.matches(s))
            .map(|(id, _)| id)
            .collect()
    } else {
        opts.snapshots
            .iter()
            .map(|s| store.resolve_in(s, &opts.selection))
            .collect::<Result<_>>()?
    };
    let repo = store.reading("verify", opts.lock_wait.0)?;
    let mut c = Checker {
        reader: &repo,
        store,
        read_data: opts.read_data || opts.sample.is_some(),
        seen_chunks: HashSet::new(),
        packs: HashMap::new(),
        headers: HashMap::new(),
        checked: Vec::new(),
        sized: HashSet::new(),
        report: VerifyReport::default(),
    };
    for bad in bad_records {
        c.problem(None, None, None, bad);
    }
    let progress = store.progress();
    progress.start_items("verify: snapshots", Some(ids.len() as u64));
    for id in ids {
        progress.advance(1);
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
        c.read_packs(share);
    }
    progress.finish();
    let mut report = c.report;
    report.duration_ms = start.elapsed().as_millis() as u64;
    // A whole verify of this store: what the mirror's catalog reports.
    noted::note(store, opts, &report)?;
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

    /// Reads back every pack the checked snapshots use (a `share` of them,
    /// chosen by id, for a sample): each entry decodes to its id and its
    /// index row matches the header. A damaged pack's users are named.
    fn read_packs(&mut self, share: f64) {
        let progress = self.store.progress().clone();
        let limit = (share * 65536.0).ceil() as u32;
        let mut packs: Vec<_> = self
            .packs
            .clone()
            .into_iter()
            .filter(|(p, _)| (u16::from_be_bytes([p.0[0], p.0[1]]) as u32) < limit)
            .collect();
        packs.sort();
        let sizes: u64 = packs
            .iter()
            .filter_map(|(p, _)| self.store.local_pack_size(p))
            .sum();
        progress.start("verify: reading packs", Some(sizes));
        let mut damaged = HashSet::new();
        for (pack, _) in packs {
            progress.advance(self.store.local_pack_size(&pack).unwrap_or(0));
            self.report.packs_read += 1;
            let indexed = |e: &PackEntry| {
                self.reader
                    .index
                    .get(&e.id)
                    .ok()
                    .flatten()
                    .is_some_and(|l| l.pack == pack && l.entry == *e)
            };
            let checked =
                packs::verify_pack(self.store, &pack, indexed, |base| self.reader.chunk(base));
            if let Err(e) = checked {
                self.problem(None, None, Some(pack), e.to_string());
                damaged.extend(damage::damaged_chunks(self.store, self.reader, &pack));
            }
        }
        if !damaged.is_empty() {
            self.name_users(damaged);
        }
    }

    /// Names every snapshot and file that uses a damaged chunk (or a delta
    /// whose chain reaches one).
    fn name_users(&mut self, damaged: HashSet<ChunkId>) {
        let bad = damage::with_dependents(self.reader, damaged);
        for (snap, path, chunk) in damage::users(self.reader, &self.checked, &bad) {
            let pack = self.reader.index.get(&chunk).ok().flatten().map(|l| l.pack);
            self.problem(
                Some(snap),
                Some(path),
                pack,
                format!("uses chunk {chunk}, which is damaged"),
            );
        }
    }

    fn snapshot(&mut self, id: &SnapshotId) -> Result<()> {
        let snap = self.store.load_snapshot(id)?;
        self.checked.push((*id, snap.clone()));
        self.chunks(id, "(top tree)", &snap.tree);
        let top = self.reader.tree(&snap.tree)?;
        // The walk borrows the reader; what it finds is checked after each step.
        let reader = self.reader.new_reader()?;
        let mut failed = Vec::new();
        reader.walk(
            "",
            top.nodes,
            |path, node| Ok(self.node(id, path, node)),
            |path, e| {
                failed.push((path.to_string(), e.to_string()));
                Ok(())
            },
        )?;
        for (path, e) in failed {
            self.problem(Some(*id), Some(path), None, e);
        }
        Ok(())
    }

    /// Checks one node; returns whether to walk into it (a subtree already
    /// checked in full is not walked again).
    fn node(&mut self, snap: &SnapshotId, path: &str, node: &Node) -> bool {
        let max = crate::format::tree::MAX_DEPTH;
        if path.matches('/').count() >= max {
            self.problem(
                Some(*snap),
                Some(path.chars().take(200).collect()),
                None,
                format!("nested more than {max} directories deep: restore refuses it"),
            );
            return false;
        }
        match &node.kind {
            NodeKind::File { chunks } => {
                self.chunks(snap, path, chunks);
                self.sizes(snap, path, chunks, node.size);
            }
            NodeKind::Symlink { .. } => {}
            NodeKind::Dir { tree } => {
                if tree.iter().all(|c| self.seen_chunks.contains(c)) && !tree.is_empty() {
                    return false;
                }
                self.chunks(snap, path, tree);
                return true;
            }
            NodeKind::Database(_) | NodeKind::ListedDatabase(_) => self.database(snap, path, node),
        }
        false
    }

    /// Checks a database node's chunks (the units, and a listed image's list
    /// chunks) and, reading data, the image of one not checked yet.
    fn database(&mut self, snap: &SnapshotId, path: &str, node: &Node) {
        let (_, list) = node.kind.database().expect("a database node");
        let mut fresh = list.chunks().iter().any(|c| !self.seen_chunks.contains(c));
        self.chunks(snap, path, list.chunks());
        if list.is_listed() {
            // A list chunk at a time: memory does not grow with the image.
            let mut cursor = UnitCursor::new(list);
            loop {
                let mut batch = Vec::with_capacity(LIST_IDS);
                while batch.len() < LIST_IDS {
                    match cursor.step(|c| self.reader.chunk(c)) {
                        Some(Ok(id)) => batch.push(id),
                        Some(Err(e)) => {
                            self.problem(Some(*snap), Some(path.into()), None, e.to_string());
                            return;
                        }
                        None => break,
                    }
                }
                if batch.is_empty() {
                    break;
                }
                fresh |= batch.iter().any(|c| !self.seen_chunks.contains(c));
                self.chunks(snap, path, &batch);
            }
        }
        if let Some((d, _)) = node.kind.database() {
            self.image_size(snap, path, list, d.page_count * d.page_size as u64);
        }
        if self.read_data && fresh {
            self.report.databases_checked += 1;
            if let Err(e) = self.check_database(list) {
                self.problem(Some(*snap), Some(path.into()), None, e);
            }
        }
    }

    /// Does the index row `loc` match the header of the pack it names?
    /// (A flipped bit in a row must not pass `verify` and then fail `restore`.)
    fn row_matches_header(&mut self, loc: &crate::store::Location) -> bool {
        let store = self.store;
        let header = self.headers.entry(loc.pack).or_insert_with(|| {
            let entries = store.local_header(&loc.pack)?;
            Some(entries.into_iter().map(|e| (e.id, e)).collect())
        });
        match header {
            Some(h) => h.get(&loc.entry.id) == Some(&loc.entry),
            // A missing pack is reported as such; a remote view's index was
            // built from the remote's headers.
            None => true,
        }
    }

    fn chunks(&mut self, snap: &SnapshotId, path: &str, chunks: &[ChunkId]) {
        for c in chunks {
            if !self.seen_chunks.insert(*c) {
                continue;
            }
            self.report.chunks += 1;
            match self.reader.index.get(c) {
                Ok(Some(loc)) if !self.row_matches_header(&loc) => self.problem(
                    Some(*snap),
                    Some(path.into()),
                    Some(loc.pack),
                    format!("the index row of chunk {c} does not match the pack's header (the index is a cache: rebuilding it from the packs repairs this)"),
                ),
                Ok(Some(loc)) => {
                    if !self.packs.contains_key(&loc.pack) {
                        // A remote view's index was built from the remote's listing.
                        if self.store.lacks_pack(&loc.pack) {
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
    fn check_database(&self, list: UnitList) -> std::result::Result<(), String> {
        let mut tmp = self.store.temp_file().map_err(|e| e.to_string())?;
        for c in self.reader.units(list) {
            let data = self
                .reader
                .chunk(&c.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
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
