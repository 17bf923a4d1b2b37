//! Power loss, not just SIGKILL: a killed process leaves the page cache
//! intact, so kill tests never test the fsync order. Here every durable
//! operation of the store (through `durable`, the one seam) is logged
//! with its bytes while takes, a repacking gc and an index repair run. Then
//! power cuts are replayed, ALICE-style: at a cut point, a file keeps only
//! the bytes it had at its last fsync plus a random prefix of the writes
//! since (the last one possibly torn), and a directory keeps only the
//! entries it had at its last fsync plus a random subset of the changes
//! since. Each such state is written out as a store, which must open and
//! verify, and in which every snapshot that completed before the cut (and
//! every snapshot it lists) must restore bit for bit.
//!
//! `SNAP_POWER_CUTS` sets how many random cut points are tried besides every
//! fsync barrier (default 40).

mod common;
use common::world::{check_store, Change, World};
use common::Rng;
use snap::durable::{testing, Op};
use snap::{SnapshotId, Store};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default)]
struct Inode {
    durable: Vec<u8>,
    /// Writes (offset, bytes; `None` bytes: a set_len to offset) since the last fsync.
    pending: Vec<(u64, Option<Vec<u8>>)>,
}

fn apply(data: &mut Vec<u8>, off: u64, bytes: &Option<Vec<u8>>) {
    match bytes {
        Some(b) => {
            let end = off as usize + b.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[off as usize..end].copy_from_slice(b);
        }
        None => data.resize(off as usize, 0),
    }
}

impl Inode {
    fn current(&self) -> Vec<u8> {
        let mut d = self.durable.clone();
        for (o, b) in &self.pending {
            apply(&mut d, *o, b);
        }
        d
    }

    /// What the disk may hold after a cut: the durable bytes, a prefix of
    /// the pending writes, and maybe part of the next one.
    fn after_cut(&self, rng: &mut Rng) -> Vec<u8> {
        let mut d = self.durable.clone();
        let n = (rng.next() % (self.pending.len() as u64 + 1)) as usize;
        for (o, b) in &self.pending[..n] {
            apply(&mut d, *o, b);
        }
        if let Some((o, Some(b))) = self.pending.get(n) {
            let torn = (rng.next() % (b.len() as u64 + 1)) as usize;
            apply(&mut d, *o, &Some(b[..torn].to_vec()));
        }
        d
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    Dir,
    File(usize),
}

/// The file system as the seam saw it: inodes, names now, names made durable.
#[derive(Clone, Default)]
struct Disk {
    inodes: Vec<Inode>,
    names: BTreeMap<PathBuf, Entry>,
    durable: BTreeMap<PathBuf, Entry>,
}

impl Disk {
    fn load(root: &Path) -> Disk {
        let mut d = Disk::default();
        d.names.insert(root.to_path_buf(), Entry::Dir);
        d.load_dir(root);
        d.durable = d.names.clone();
        d
    }

    fn load_dir(&mut self, dir: &Path) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                self.names.insert(p.clone(), Entry::Dir);
                self.load_dir(&p);
            } else if !p.file_name().unwrap().to_string_lossy().starts_with("lock") {
                self.inodes.push(Inode {
                    durable: fs::read(&p).unwrap(),
                    pending: vec![],
                });
                self.names.insert(p, Entry::File(self.inodes.len() - 1));
            }
        }
    }

    fn inode(&mut self, p: &Path) -> Option<&mut Inode> {
        match self.names.get(p) {
            Some(Entry::File(i)) => Some(&mut self.inodes[*i]),
            _ => None, // a temporary file made outside the seam: never read
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Create(p) => {
                self.inodes.push(Inode::default());
                self.names
                    .insert(p.clone(), Entry::File(self.inodes.len() - 1));
            }
            Op::Write(p, off, b) => {
                if let Some(i) = self.inode(p) {
                    i.pending.push((*off, Some(b.clone())));
                }
            }
            Op::SetLen(p, n) => {
                if let Some(i) = self.inode(p) {
                    i.pending.push((*n, None));
                }
            }
            Op::SyncFile(p) => {
                if let Some(i) = self.inode(p) {
                    i.durable = i.current();
                    i.pending.clear();
                }
            }
            Op::Rename(a, b) => {
                if let Some(e) = self.names.remove(a) {
                    self.names.insert(b.clone(), e);
                }
            }
            Op::Remove(p) => {
                self.names.remove(p);
            }
            Op::Mkdir(p) => {
                self.names.insert(p.clone(), Entry::Dir);
            }
            Op::SyncDir(d) => {
                let children = |m: &BTreeMap<PathBuf, Entry>| -> Vec<PathBuf> {
                    m.keys()
                        .filter(|k| k.parent() == Some(d))
                        .cloned()
                        .collect()
                };
                for k in children(&self.durable) {
                    self.durable.remove(&k);
                }
                for k in children(&self.names) {
                    self.durable.insert(k.clone(), self.names[&k]);
                }
            }
        }
    }

    /// Writes a state the disk may be in after a cut (or, with `rng` None,
    /// everything the process did) under `out`, in place of `root`.
    fn write(&self, root: &Path, out: &Path, rng: Option<&mut Rng>) {
        let mut names = self.durable.clone();
        let mut contents: HashMap<usize, Vec<u8>> = HashMap::new();
        match rng {
            None => {
                names = self.names.clone();
                for (i, n) in self.inodes.iter().enumerate() {
                    contents.insert(i, n.current());
                }
            }
            Some(rng) => {
                let keys: std::collections::BTreeSet<&PathBuf> =
                    self.names.keys().chain(self.durable.keys()).collect();
                for k in keys {
                    if self.names.get(k) != self.durable.get(k) && rng.next() % 2 == 0 {
                        match self.names.get(k) {
                            Some(e) => names.insert(k.clone(), *e),
                            None => names.remove(k),
                        };
                    }
                }
                for (i, n) in self.inodes.iter().enumerate() {
                    contents.insert(i, n.after_cut(rng));
                }
            }
        }
        for (p, e) in &names {
            let rel = p.strip_prefix(root).unwrap();
            let dest = out.join(rel);
            // An entry whose directory did not survive is gone with it.
            if !dest.parent().unwrap().is_dir() && rel != Path::new("") {
                continue;
            }
            match e {
                Entry::Dir => fs::create_dir_all(&dest).unwrap(),
                Entry::File(i) => fs::write(&dest, &contents[i]).unwrap(),
            }
        }
    }
}

/// Every file under `dir` but `lock` and `tmp/`, with its bytes.
fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            if rel.starts_with("tmp") || rel.to_string_lossy().starts_with("lock") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn power_cuts_lose_no_completed_snapshot() {
    let mut w = World::new();
    let mut model: HashMap<SnapshotId, String> = HashMap::new();
    let want = w.expected();
    model.insert(w.take().unwrap(), want);
    let root = w.root();
    let disk0 = Disk::load(&root);
    testing::watch(&root, None);
    // (log position when the take returned, its snapshot)
    let mut completed: Vec<(usize, SnapshotId)> = Vec::new();
    let changes = [
        Change::File { n: 0, seed: 3 },
        Change::DbEdit { row: 1, at: 7 },
        Change::File { n: 1, seed: 2 },
        Change::DbSet { row: 2, val: 1 },
        Change::DbRevert { version: 0 },
    ];
    for (i, c) in changes.iter().enumerate() {
        w.apply(c);
        let want = w.expected();
        let id = w.take().unwrap();
        model.insert(id, want);
        completed.push((testing::logged(&root), id));
        if i == 2 {
            let r = w.gc(2, 0.0, false).unwrap();
            let forgotten: Vec<SnapshotId> = r
                .plan
                .forget()
                .map(|d| SnapshotId::from_hex(&d.id).unwrap())
                .collect();
            // Forgotten snapshots may or may not survive a cut; if listed, they restore.
            completed.retain(|(_, id)| !forgotten.contains(id));
        }
    }
    // `tag` replaces the newest record: the new one is durable before the
    // old one goes, so every cut keeps one of them (or both).
    let (old_done, old) = *completed.last().unwrap();
    let r = snap::tag(&w.store, &old, &["kept".into()], &[], Default::default()).unwrap();
    model.insert(r.new, model[&old].clone());
    completed.retain(|(_, id)| *id != old);
    completed.push((testing::logged(&root), r.new));
    let retagged = (old, r.new);
    // Points are written as a take's records are: their packs durable and
    // indexed, then the record.
    for c in [
        Change::DbSet { row: 3, val: 2 },
        Change::DbEdit { row: 4, at: 1 },
    ] {
        w.apply(&c);
        let want = common::world::db_digest(&w.data.join("app.db"));
        let id = w.point().expect("a change makes a point");
        model.insert(id, want);
        completed.push((testing::logged(&root), id));
    }
    w.repair().unwrap();
    let log = testing::unwatch(&root);
    assert!(!log.is_empty());

    // The log is complete: replaying all of it gives the store as it is.
    let mut disk = disk0.clone();
    for op in &log {
        disk.apply(op);
    }
    let full = tempfile::tempdir().unwrap();
    disk.write(&root, &full.path().join("s"), None);
    assert_eq!(
        contents(&full.path().join("s")).keys().collect::<Vec<_>>(),
        contents(&root).keys().collect::<Vec<_>>(),
        "a store write bypassed the durability seam"
    );
    assert!(
        contents(&full.path().join("s")) == contents(&root),
        "replayed bytes differ"
    );

    // Cut points: after every fsync barrier, and random ones.
    let mut rng = Rng(0xC0FFEE);
    let extra: usize = std::env::var("SNAP_POWER_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let mut cuts: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, op)| matches!(op, Op::SyncDir(_)))
        .map(|(i, _)| i + 1)
        .collect();
    cuts.extend((0..extra).map(|_| (rng.next() % (log.len() as u64 + 1)) as usize));
    cuts.sort();
    cuts.dedup();
    let mut checked = 0;
    let mut disk = disk0.clone();
    let mut applied = 0;
    for cut in cuts {
        while applied < cut {
            disk.apply(&log[applied]);
            applied += 1;
        }
        let out = tempfile::tempdir().unwrap();
        let state = out.path().join("store");
        disk.write(&root, &state, Some(&mut rng));
        let store = Store::open(&state).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let listed: Vec<SnapshotId> = store.snapshot_ids().unwrap();
        assert!(
            cut < old_done || listed.contains(&retagged.0) || listed.contains(&retagged.1),
            "cut at {cut}: the retagged snapshot lost both its records"
        );
        for (pos, id) in &completed {
            if *pos <= cut {
                assert!(
                    listed.contains(id),
                    "cut at {cut}: completed snapshot {id} lost"
                );
            }
        }
        check_store(&store, &model)
            .unwrap_or_else(|e| panic!("cut at {cut} of {}: {e}", log.len()));
        checked += 1;
    }
    eprintln!(
        "{checked} power cuts over {} logged operations: every store verified and restored",
        log.len()
    );
}

// DESIGN.md said a restored database never has a stale `-wal` beside it,
// but nothing ordered the removal of the old `-wal`/`-shm` before the
// rename of the new file (no directory fsync between them): a cut could
// leave the old WAL beside the new database, and SQLite would apply its
// frames to it. Every cut of a restore over a database with a WAL is
// replayed: the new database never appears beside an old sibling.
#[test]
fn power_cuts_never_leave_an_old_wal_beside_a_restored_database() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    rusqlite::Connection::open(src.join("app.db"))
        .unwrap()
        .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    let store = Store::init(dir.path().join("store"), Default::default()).unwrap();
    let id = snap::take(
        &store,
        &snap::TakeOptions {
            paths: vec![src.clone()],
            ..Default::default()
        },
    )
    .unwrap()
    .id
    .unwrap();
    // What is there now: another database, with its WAL and shared memory.
    let out = dir.path().join("out");
    fs::create_dir_all(out.join("src")).unwrap();
    let old_db = b"SQLite format 3\0 the old database".to_vec();
    fs::write(out.join("src/app.db"), &old_db).unwrap();
    fs::write(out.join("src/app.db-wal"), b"old frames").unwrap();
    fs::write(out.join("src/app.db-shm"), b"old index").unwrap();
    let disk0 = Disk::load(&out);
    testing::watch(&out, None);
    snap::restore(
        &store,
        &snap::RestoreOptions {
            snapshot: id.to_hex(),
            to: Some(out.clone()),
            force: true,
            ..Default::default()
        },
    )
    .unwrap();
    let log = testing::unwatch(&out);
    assert!(log.iter().any(|op| matches!(op, Op::Remove(_))));
    let mut rng = Rng(0xD00D);
    let mut disk = disk0;
    let mut states = 0;
    for (i, op) in log.iter().enumerate() {
        disk.apply(op);
        for _ in 0..8 {
            let cut = tempfile::tempdir().unwrap();
            let state = cut.path().join("out");
            disk.write(&out, &state, Some(&mut rng));
            let db = state.join("src/app.db");
            let new = fs::read(&db).is_ok_and(|b| b != old_db);
            for suffix in ["-wal", "-shm", "-journal"] {
                let sibling = state.join(format!("src/app.db{suffix}"));
                assert!(
                    !(new && sibling.exists()),
                    "cut after operation {i} of {}: the new database beside an old {suffix}",
                    log.len()
                );
            }
            states += 1;
        }
    }
    eprintln!(
        "{states} cut states of a database restore: none has an old sibling beside the new file"
    );
}
