//! Points shipped to a bucket: every commit that completed `lag` (10 s)
//! before the writer and the watcher were killed together restores from the
//! bucket alone, sealed, to the newest point and to a moment; a ship run
//! creates a bounded number of objects whatever the commit rate, and a
//! local pack sent inside a bundle is repaired from its range there.

mod common;

use common::{emulator_bin, ledger, ok, snap_at, snap_ok, Emulator};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Not a test: the writer process the tests below start.
#[test]
fn writer_process() {
    let Ok(db) = std::env::var(ledger::DB_VAR) else {
        return;
    };
    let rate = std::env::var(ledger::RATE_VAR).unwrap().parse().unwrap();
    ledger::run(Path::new(&db), rate, "");
}

/// `snap watch DB --remote URL` (sealed unless `plain`), with `extra` args.
fn watcher(host: &str, store: &Path, db: &Path, url: &str, extra: &[&str]) -> Child {
    Command::new(common::snap_bin())
        .env("STORAGE_EMULATOR_HOST", host)
        .arg("--store")
        .arg(store)
        .args(["watch", "--remote", url])
        .args(extra)
        .arg(db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Restores `what` from `url` alone (no local store) into `to`, and checks
/// the ledger there: its contiguous sequence.
fn from_bucket(host: &str, dir: &Path, url: &str, what: &str, to: &Path) -> i64 {
    let _ = std::fs::remove_dir_all(to);
    let id = dir.join("identity");
    let nowhere = dir.join("no-store-here");
    let args = [
        "--identity",
        id.to_str().unwrap(),
        "restore",
        "--remote",
        url,
        what,
    ];
    ok(snap_at(
        host,
        &nowhere,
        &[&args[..], &["--to", to.to_str().unwrap()]].concat(),
    ));
    assert!(
        !nowhere.exists(),
        "a restore from the bucket needs no store"
    );
    ledger::check(&to.join("ledger.db")).unwrap()
}

fn rfc3339(t: f64) -> String {
    let nanos = (t.fract() * 1e9) as u32;
    chrono::DateTime::from_timestamp(t as i64, nanos)
        .unwrap()
        .to_rfc3339()
}

#[test]
fn every_commit_older_than_the_lag_restores_from_the_bucket_alone() {
    if emulator_bin().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let emu = Emulator::start(&tmp.path().join("emu"));
    let store = tmp.path().join("store");
    snap_ok(&store, &["init"]);
    let id = tmp.path().join("identity");
    snap_ok(&store, &["key", "generate", "--out", id.to_str().unwrap()]);
    for trial in 0..2u64 {
        let url = format!("gs://snaptest/ship{trial}");
        let db = tmp.path().join(format!("t{trial}")).join("ledger.db");
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        let mut w = ledger::start("writer_process", &db, 200, "");
        std::thread::sleep(Duration::from_millis(300));
        let mut watch = watcher(&emu.host(), &store, &db, &url, &[]);
        // Killed together (SIGKILL) at an uneven moment past the lag.
        std::thread::sleep(Duration::from_millis(13_000 + trial * 1_700));
        let killed_at = ledger::now();
        let commits = w.kill();
        let _ = watch.kill();
        let _ = watch.wait();
        let due = |before: f64| {
            commits
                .iter()
                .filter(|(_, t)| *t <= before)
                .map(|(n, _)| *n)
                .max()
                .unwrap_or(0)
        };
        let scratch = tmp.path().join("r");
        let latest = format!("latest:{}", db.display());
        let got = from_bucket(&emu.host(), tmp.path(), &url, &latest, &scratch);
        let want = due(killed_at - 10.0);
        assert!(
            got >= want,
            "trial {trial}: the bucket's newest point holds commit {got}; {want} completed 10 s before the kill"
        );
        eprintln!(
            "trial {trial}: the bucket lost {:.2} s of commits",
            commits
                .iter()
                .find(|(n, _)| *n == got + 1)
                .map_or(0.0, |(_, t)| killed_at - t)
        );
        // A moment: the last point at or before it, from the bucket alone.
        let moment = commits[commits.len() / 3].1;
        let at = format!("{latest}@{}", rfc3339(moment));
        let got = from_bucket(&emu.host(), tmp.path(), &url, &at, &scratch);
        let newest_then = commits.iter().find(|(n, _)| *n == got).map_or(0.0, |c| c.1);
        assert!(
            newest_then <= moment + 0.05,
            "a point after the moment was used"
        );
        assert!(
            got >= due(moment - 1.5),
            "the point before the moment is older than a look"
        );
    }
}

#[test]
fn a_ship_creates_few_objects_and_a_bundled_pack_is_repaired_from_its_range() {
    let (_tmp, store, bucket, url, db, mut w) = beside_a_writer();
    // A lag of 2 s: a run is due when the oldest waiting point is 1 s old.
    let args = [
        "--plaintext",
        "--lag-seconds",
        "2",
        "--seconds",
        "8",
        "--interval-ms",
        "200",
    ];
    let status = watcher("", &store, &db, &url, &args).wait().unwrap();
    w.kill();
    assert!(status.success());
    let count = |dir: &str| walk(&bucket.join(dir));
    let (packs, batches, holds) = (count("packs"), count("batches"), count("holds"));
    // About one run a second for 8 s (and the one at exit), each a hold, a
    // bundle and a batch: never an object per point.
    let points = common::snap_json(&store, &["list", "--points"])
        .as_array()
        .unwrap()
        .len();
    eprintln!("{points} points: {packs} packs, {batches} batches, {holds} holds");
    assert!(points >= 25, "{points} points");
    // A run may carry records alone, with no hold: records are listed
    // before packs, so a point recorded between the two listings has its
    // packs sent in one run and its record in the next (seen under load).
    assert!(
        holds <= 12
            && packs <= holds
            && batches + count("snapshots") <= 12
            && count("catalogs") <= 2,
        "{packs} {batches} {holds} {}",
        count("catalogs")
    );
    let remote = common::snap_json(&store, &["list", "--remote", &url]);
    assert_eq!(
        remote.as_array().unwrap().len(),
        points,
        "every point is in the bucket"
    );
    // A local pack that went in a bundle: lost here, repaired from its range.
    let sent = std::fs::read_dir(store.join("mirror"))
        .unwrap()
        .flatten()
        .find(|e| e.path().join("sent").exists())
        .map(|e| std::fs::read_to_string(e.path().join("sent")).unwrap())
        .unwrap();
    let bundled = sent
        .lines()
        .find(|l| l.starts_with("p ") && l.split(' ').count() == 5)
        .expect("a pack sent in a bundle");
    let pack = bundled.split(' ').nth(1).unwrap();
    let path = store
        .join("packs")
        .join(&pack[..2])
        .join(format!("{pack}.pack"));
    let before = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    snap_ok(&store, &["repair", "packs", "--from-remote", &url]);
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let out = common::snap(&store, &["verify"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    // The holds of the runs add to the first, full one: remote gc reads the
    // chain and keeps it; after a full hold (written by a rescan) the chain
    // before it is superseded and deleted.
    let gc = ["gc", "--remote", &url, "--keep-within", "1d"];
    snap_ok(&store, &gc);
    assert_eq!(count("holds"), holds, "every hold is in the chain");
    snap_ok(
        &store,
        &["mirror", "--remote", &url, "--plaintext", "--rescan"],
    );
    snap_ok(&store, &gc);
    assert_eq!(count("holds"), 1, "the full hold alone is left");
    snap_ok(&store, &["verify", "--remote", &url]);
    let remote = common::snap_json(&store, &["list", "--remote", &url]);
    assert_eq!(remote.as_array().unwrap().len(), points);
}

/// A store, a `file://` bucket (path and URL) and a ledger database that a
/// writer commits to 200 times a second.
fn beside_a_writer() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    String,
    std::path::PathBuf,
    ledger::Writer,
) {
    let tmp = tempfile::tempdir().unwrap();
    let (store, bucket) = (tmp.path().join("store"), tmp.path().join("bucket"));
    let url = format!("file://{}", bucket.display());
    snap_ok(&store, &["init"]);
    let db = tmp.path().join("ledger.db");
    let w = ledger::start("writer_process", &db, 200, "");
    std::thread::sleep(Duration::from_millis(300));
    (tmp, store, bucket, url, db, w)
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.flatten()
            .map(|e| match e.path().is_dir() {
                true => walk(&e.path()),
                false => 1,
            })
            .sum()
    })
}

#[test]
fn a_watch_that_could_not_seal_its_points_is_refused_before_it_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, db) = (tmp.path().join("store"), tmp.path().join("app.db"));
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t(x)")
        .unwrap();
    let url = format!("file://{}", tmp.path().join("bucket").display());
    let out = common::snap(
        &store,
        &[
            "watch",
            db.to_str().unwrap(),
            "--remote",
            &url,
            "--seconds",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr(&out));
    assert!(
        common::stderr(&out).contains("no recipient"),
        "{}",
        common::stderr(&out)
    );
    assert!(
        !store.exists() && !tmp.path().join("bucket").exists(),
        "nothing is created"
    );
}

/// Kills of the watcher while it ships (a lag of 0.4 s: a run is nearly
/// always under way): the bucket always verifies, and every point in it
/// restores, from the bucket alone, to a state that existed.
#[test]
fn a_watcher_killed_while_it_ships_leaves_a_bucket_that_verifies() {
    let kills: u64 = std::env::var("SNAP_SHIP_KILLS").map_or(6, |k| k.parse().unwrap());
    let (tmp, store, _bucket, url, db, mut w) = beside_a_writer();
    let args = [
        "--plaintext",
        "--lag-seconds",
        "0.4",
        "--interval-ms",
        "100",
    ];
    for k in 0..kills {
        let mut watch = watcher("", &store, &db, &url, &args);
        std::thread::sleep(Duration::from_millis(700 + (k * 397) % 900));
        let _ = watch.kill();
        let _ = watch.wait();
        snap_ok(&store, &["verify", "--remote", &url]);
    }
    w.kill();
    let points = common::snap_json(&store, &["list", "--remote", &url]);
    let points = points.as_array().unwrap();
    assert!(
        points.len() > kills as usize,
        "{} points in the bucket",
        points.len()
    );
    let step = points.len().div_ceil(12);
    for p in points.iter().step_by(step).chain(points.last()) {
        let id = p["id"].as_str().unwrap();
        let to = tmp.path().join("r");
        let _ = std::fs::remove_dir_all(&to);
        let nowhere = tmp.path().join("no-store");
        ok(snap_at(
            "",
            &nowhere,
            &[
                "restore",
                "--remote",
                &url,
                id,
                "--to",
                to.to_str().unwrap(),
            ],
        ));
        ledger::check(&to.join("ledger.db")).unwrap_or_else(|e| panic!("point {id}: {e}"));
    }
    // What the killed runs left is completed by the next; nothing is lost.
    snap_ok(&store, &["mirror", "--remote", &url, "--plaintext"]);
    let local = common::snap_json(&store, &["list", "--points"])
        .as_array()
        .unwrap()
        .len();
    let remote = common::snap_json(&store, &["list", "--remote", &url])
        .as_array()
        .unwrap()
        .len();
    assert_eq!(local, remote, "every point is in the bucket after a mirror");
}
