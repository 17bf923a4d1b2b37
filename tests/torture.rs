//! The kill campaign: real `snap` processes (take of files and a live WAL
//! database with a writer running, gc with repack, mirror to a `file://`
//! remote, clone, repair index) are SIGKILLed at random moments. After every
//! kill the store must verify, every snapshot it lists must restore bit for
//! bit against the reference kept when its take completed, and the newest
//! completed snapshot must still be there; a killed mirror leaves a remote
//! that verifies, and a killed clone is finished by the next clone. The
//! destructive paths are killed too: an in-place rollback (of a directory of
//! its own) always completes on a rerun, leaving nothing of snap's behind,
//! and a recover (into a database of its own) is all or nothing.
//!
//! CI runs a short campaign; `scripts/torture.sh` runs 1,000+ kills
//! (`SNAP_TORTURE_KILLS`) on a release build and prints the counts.

mod common;
use common::*;
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Default, Debug)]
struct Counts {
    trials: u64,
    kills: BTreeMap<&'static str, u64>,
    verified: u64,
    restores: u64,
    clones_resumed: u64,
}

/// A restored snapshot's content: files by bytes, the database by its rows
/// (checked against its invariant first).
fn restored_digest(store: &Path, id: &str, scratch: &Path) -> String {
    let _ = fs::remove_dir_all(scratch);
    snap_ok(store, &["restore", id, "--to", scratch.to_str().unwrap()]);
    let mut fp = fingerprint(&scratch.join("data"));
    fp.retain(|p, _| p.file_name().is_none_or(|n| n != "live.db"));
    let c = Connection::open(scratch.join("data/live.db")).unwrap();
    let total: i64 = c
        .query_row("SELECT sum(n) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        total,
        1000 * 100,
        "snapshot {id}: the database invariant is broken"
    );
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok", "snapshot {id}");
    let rows: Vec<(i64, i64)> = c
        .prepare("SELECT id, n FROM t ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    format!("{fp:?}{}", blake3::hash(format!("{rows:?}").as_bytes()))
}

fn live_writer(db: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let c = Connection::open(&db).unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        let mut rng = Rng(42);
        while !stop.load(Ordering::Relaxed) {
            let (a, b) = ((rng.next() % 1000) as i64, (rng.next() % 1000) as i64);
            // Transfers keep the sum constant: a torn capture would show.
            let _ = c.execute_batch(&format!(
                "BEGIN; UPDATE t SET n = n - 1 WHERE id = {a}; UPDATE t SET n = n + 1 WHERE id = {b}; COMMIT;"
            ));
            std::thread::sleep(Duration::from_millis(2));
        }
    })
}

fn spawn(store: &Path, args: &[&str]) -> std::process::Child {
    Command::new(snap_bin())
        .arg("--store")
        .arg(store)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn kill_campaign() {
    let kills: u64 = std::env::var("SNAP_TORTURE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = (dir.path().join("data"), dir.path().join("store"));
    let remote = dir.path().join("remote");
    let url = format!("file://{}", remote.display());
    // The remote is sealed: the operator's identity opens it.
    let identity = dir.path().join("identity");
    let identity = identity.to_str().unwrap();
    make_tree(&data, 11, 2);
    let db = data.join("live.db");
    {
        let c = Connection::open(&db).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=wal; CREATE TABLE t(id INTEGER PRIMARY KEY, n INTEGER, pad BLOB)",
        )
        .unwrap();
        let tx = c.unchecked_transaction().unwrap();
        for i in 0..1000 {
            tx.execute("INSERT INTO t VALUES (?1, 100, randomblob(300))", [i])
                .unwrap();
        }
        tx.commit().unwrap();
    }
    snap_ok(&store, &["init", "--pack-size", "1048576"]);
    snap_ok(&store, &["key", "generate", "--out", identity]);
    let side = Side::new(dir.path(), &store);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = live_writer(db.clone(), stop.clone());
    let scratch = dir.path().join("scratch");
    let mut refs: BTreeMap<String, String> = BTreeMap::new();
    let mut newest: Option<String> = None;
    let mut rng = Rng(0x7047);
    let mut counts = Counts::default();
    let mut durations: BTreeMap<&str, Duration> = BTreeMap::new();
    let start = Instant::now();
    let mut day = 0u64;
    while counts.kills.values().sum::<u64>() < kills {
        counts.trials += 1;
        day += 1;
        fs::write(
            data.join("changing.bin"),
            Rng(day).bytes(300_000 + (day % 5) as usize * 100_000),
        )
        .unwrap();
        let ops = [
            "take", "take", "gc", "mirror", "clone", "repair", "rollback", "recover",
        ];
        let op = ops[(rng.next() % ops.len() as u64) as usize];
        side.prepare(op, day);
        let clone_dest = dir.path().join("clone");
        let keep = (2 + rng.next() % 4).to_string();
        let threshold = ["0", "0.1", "1"][(rng.next() % 3) as usize];
        let args: Vec<&str> = match op {
            "take" => vec!["--json", "take", data.to_str().unwrap()],
            "gc" => vec!["gc", "--keep-last", &keep, "--repack-threshold", threshold],
            // Every other mirror sends small packs in bundles, as shipping does.
            "mirror" if day.is_multiple_of(2) => vec!["mirror", "--bundle", "--remote", &url],
            "mirror" => vec!["mirror", "--remote", &url],
            "clone" => vec!["--identity", identity, "clone", "--remote", &url],
            "rollback" | "recover" => side.args(op),
            _ => vec!["repair", "index"],
        };
        let target = if op == "clone" {
            clone_dest.clone()
        } else {
            store.clone()
        };
        if op == "clone" && !remote.join("config").exists() {
            continue;
        }
        let typical = *durations.entry(op).or_insert(Duration::ZERO);
        let mut child = spawn(&target, &args);
        if typical > Duration::ZERO {
            std::thread::sleep(typical.mul_f64((rng.next() % 1000) as f64 / 1000.0 * 1.2));
        }
        let t = Instant::now();
        let killed = child.try_wait().unwrap().is_none() && typical > Duration::ZERO;
        if killed {
            let _ = child.kill();
            *counts.kills.entry(op).or_default() += 1;
        }
        let out = child.wait_with_output().unwrap();
        if !killed {
            assert!(out.status.success(), "{op} failed unkilled");
            let d = durations.get_mut(op).unwrap();
            *d = (*d).max(t.elapsed());
        }
        if op == "take" && out.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let id = v["id"].as_str().unwrap().to_string();
            refs.insert(id.clone(), restored_digest(&store, &id, &scratch));
            counts.restores += 1;
            newest = Some(id);
        }
        side.settle(op, &store);
        // The store verifies after every trial, with whatever the kill left.
        let read_data = counts.trials % 8 == 0;
        let mut verify = vec!["verify"];
        if read_data {
            verify.push("--read-data");
        }
        snap_ok(&store, &verify);
        counts.verified += 1;
        // The snapshots of the data directory (not the rollback's and the
        // recover's, nor their undo snapshots).
        let listed = snap_json(&store, &["list", "--path", data.to_str().unwrap()]);
        let ids: Vec<String> = listed
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["paths"][0] == data.to_str().unwrap())
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect();
        // A take killed after its record became durable completed too, and
        // is the newest now (at most one new record per trial).
        if let Some(new) = ids.iter().find(|id| !refs.contains_key(*id)) {
            newest = Some(new.clone());
        }
        if let Some(n) = &newest {
            assert!(
                ids.contains(n),
                "after {op} (killed: {killed}): the newest completed snapshot {n} is gone; listed {ids:?}"
            );
        }
        for id in &ids {
            if let Some(want) = refs.get(id) {
                assert_eq!(
                    &restored_digest(&store, id, &scratch),
                    want,
                    "snapshot {id}"
                );
                counts.restores += 1;
            } else {
                // Recorded by a take that was killed after its record was
                // durable: it must restore (and check) all the same.
                refs.insert(id.clone(), restored_digest(&store, id, &scratch));
                counts.restores += 1;
            }
        }
        if op == "mirror" && remote.join("config").exists() {
            snap_ok(
                &store,
                &["--identity", identity, "verify", "--remote", &url],
            );
        }
        if op == "clone" {
            // A killed clone is finished by the next one, and the result verifies.
            let again = snap(
                &clone_dest,
                &["--identity", identity, "clone", "--remote", &url],
            );
            assert!(
                again.status.success(),
                "{}",
                String::from_utf8_lossy(&again.stderr)
            );
            if killed {
                counts.clones_resumed += 1;
            }
            snap_ok(&clone_dest, &["verify"]);
            fs::remove_dir_all(&clone_dest).unwrap();
        }
        // Bounded history: an unkilled gc now and then.
        if counts.trials % 10 == 0 {
            snap_ok(&store, &["gc", "--keep-last", "6"]);
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    snap_ok(&store, &["verify", "--read-data"]);
    eprintln!(
        "kill campaign: {} trials, {} kills {:?}; {} verifies passed, {} restores matched their reference, {} killed clones resumed; 0 stores failed verify, 0 completed snapshots lost ({:.0} s)",
        counts.trials,
        counts.kills.values().sum::<u64>(),
        counts.kills,
        counts.verified,
        counts.restores,
        counts.clones_resumed,
        start.elapsed().as_secs_f64()
    );
}

/// The destructive paths' own data: a directory rolled back in place, and a
/// database rows are recovered into, each with its snapshot.
struct Side {
    roll: PathBuf,
    roll_id: String,
    roll_ref: BTreeMap<PathBuf, String>,
    rec: PathBuf,
    rec_id: String,
    /// Rows before the trial's recover.
    rec_before: std::cell::Cell<i64>,
}

const REC_ROWS: i64 = 2000;

impl Side {
    fn new(dir: &Path, store: &Path) -> Side {
        let roll = dir.join("roll");
        fs::create_dir_all(&roll).unwrap();
        for i in 0..40 {
            fs::write(roll.join(format!("f{i}")), Rng(900 + i).bytes(100_000)).unwrap();
        }
        let id = |p: &Path| {
            snap_json(store, &["take", p.to_str().unwrap()])["id"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let roll_id = id(&roll);
        let rec = dir.join("rec.db");
        let c = Connection::open(&rec).unwrap();
        c.execute_batch("CREATE TABLE r(id INTEGER PRIMARY KEY, v BLOB)")
            .unwrap();
        let tx = c.unchecked_transaction().unwrap();
        for i in 0..REC_ROWS {
            tx.execute("INSERT INTO r VALUES (?1, randomblob(200))", [i])
                .unwrap();
        }
        tx.commit().unwrap();
        drop(c);
        let rec_id = id(&rec);
        Side {
            roll_ref: fingerprint(&roll),
            roll,
            roll_id,
            rec,
            rec_id,
            rec_before: std::cell::Cell::new(REC_ROWS),
        }
    }

    fn rows(&self) -> i64 {
        let c = Connection::open(&self.rec).unwrap();
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok", "the recovered database is intact");
        c.query_row("SELECT count(*) FROM r", [], |r| r.get(0))
            .unwrap()
    }

    /// Changes what the trial's op will put back.
    fn prepare(&self, op: &str, day: u64) {
        match op {
            "rollback" => {
                for i in 0..40 {
                    fs::write(
                        self.roll.join(format!("f{i}")),
                        Rng(day * 100 + i).bytes(100_000),
                    )
                    .unwrap();
                }
            }
            "recover" => {
                let c = Connection::open(&self.rec).unwrap();
                c.execute("DELETE FROM r WHERE id % 7 = ?1", [(day % 7) as i64])
                    .unwrap();
                drop(c);
                self.rec_before.set(self.rows());
            }
            _ => {}
        }
    }

    fn args(&self, op: &str) -> Vec<&str> {
        match op {
            "rollback" => vec!["restore", &self.roll_id, "--in-place"],
            _ => vec!["recover", &self.rec_id, "--db", self.rec.to_str().unwrap()],
        }
    }

    /// After the op (killed or not): the state is whole, and a rerun
    /// finishes what was interrupted.
    fn settle(&self, op: &str, store: &Path) {
        match op {
            "rollback" => {
                snap_ok(store, &self.args(op));
                assert_eq!(
                    fingerprint(&self.roll),
                    self.roll_ref,
                    "the rollback completed"
                );
                let left: Vec<_> = fs::read_dir(&self.roll)
                    .unwrap()
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(".snap-"))
                    .collect();
                assert!(left.is_empty(), "leftovers: {left:?}");
                let list = snap(store, &["list"]);
                assert!(!String::from_utf8_lossy(&list.stderr).contains("did not finish"));
            }
            "recover" => {
                let now = self.rows();
                assert!(
                    now == self.rec_before.get() || now == REC_ROWS,
                    "a recover is all or nothing: {now} rows (before {}, all {REC_ROWS})",
                    self.rec_before.get()
                );
                snap_ok(store, &self.args(op));
                assert_eq!(self.rows(), REC_ROWS);
            }
            _ => {}
        }
    }
}
