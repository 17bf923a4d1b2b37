//! gc end to end with the real binary: 60 days thinned by a policy, every
//! kept snapshot restoring bit for bit; gc killed at random moments; take and
//! gc racing in parallel processes.

mod common;
use common::*;
use rusqlite::Connection;
use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A logical fingerprint of a database: every row, in order.
fn db_rows(db: &Path) -> String {
    let c = Connection::open(db).unwrap();
    let mut stmt = c.prepare("SELECT k, v FROM kv ORDER BY k").unwrap();
    let rows: Vec<String> = stmt
        .query_map([], |r| {
            Ok(format!(
                "{}={}",
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?
            ))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    blake3::hash(rows.join("\n").as_bytes())
        .to_hex()
        .to_string()
}

/// One day of change: a file rewritten, a file added, rows of the live db updated.
fn churn(src: &Path, day: u64, db: &Connection) {
    let mut rng = Rng(day * 7919 + 1);
    fs::write(src.join("files/changing.bin"), rng.bytes(300_000)).unwrap();
    fs::write(src.join(format!("files/day-{day}.txt")), rng.text(50_000)).unwrap();
    let tx = db.unchecked_transaction().unwrap();
    for _ in 0..50 {
        tx.execute(
            "UPDATE kv SET v = ?1 WHERE k = ?2",
            (
                format!("day{day}-{}", rng.next()),
                (rng.next() % 2000) as i64,
            ),
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

fn setup(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, Connection) {
    let (src, store) = (dir.join("data"), dir.join("store"));
    fs::create_dir_all(src.join("files")).unwrap();
    fs::write(src.join("files/static.bin"), Rng(3).bytes(1 << 20)).unwrap();
    let db = Connection::open(src.join("app.db")).unwrap();
    db.execute_batch("PRAGMA journal_mode=wal; CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    let tx = db.unchecked_transaction().unwrap();
    for k in 0..2000 {
        tx.execute("INSERT INTO kv VALUES (?1, ?2)", (k, "x".repeat(100)))
            .unwrap();
    }
    tx.commit().unwrap();
    snap_ok(&store, &["init"]);
    (src, store, db)
}

/// What a restored tree must equal: the files, and the database's rows.
fn expected(
    src: &Path,
) -> (
    std::collections::BTreeMap<std::path::PathBuf, String>,
    String,
) {
    let mut files = fingerprint(&src.join("files"));
    files.retain(|p, _| !p.as_os_str().is_empty());
    (files, db_rows(&src.join("app.db")))
}

fn check_restore(
    store: &Path,
    id: &str,
    to: &Path,
    want: &(
        std::collections::BTreeMap<std::path::PathBuf, String>,
        String,
    ),
) {
    snap_ok(store, &["restore", id, "--to", to.to_str().unwrap()]);
    let mut files = fingerprint(&to.join("data/files"));
    files.retain(|p, _| !p.as_os_str().is_empty());
    assert_eq!(files, want.0, "files of {id}");
    assert_eq!(db_rows(&to.join("data/app.db")), want.1, "database of {id}");
    fs::remove_dir_all(to).unwrap();
}

#[test]
fn sixty_days_thinned_daily_7_weekly_4() {
    let dir = tempfile::tempdir().unwrap();
    let (src, store, db) = setup(dir.path());
    let mut want = HashMap::new();
    let start = chrono::DateTime::parse_from_rfc3339("2026-09-01T03:00:00+00:00").unwrap();
    for day in 0..60u64 {
        churn(&src, day, &db);
        let time = (start + chrono::Duration::days(day as i64)).to_rfc3339();
        let out = snap_json(&store, &["take", src.to_str().unwrap(), "--time", &time]);
        want.insert(out["id"].as_str().unwrap().to_string(), expected(&src));
    }
    let before = du(&store);
    let plan = snap_json(
        &store,
        &["gc", "--keep-daily", "7", "--keep-weekly", "4", "--dry-run"],
    );
    assert_eq!(
        snap_json(&store, &["list"]).as_array().unwrap().len(),
        60,
        "--dry-run changed something"
    );
    let report = snap_json(&store, &["gc", "--keep-daily", "7", "--keep-weekly", "4"]);
    assert_eq!(report["plan"], plan["plan"]);
    let list = snap_json(&store, &["list"]);
    let kept: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    // 7 newest days, plus the newest of 4 ISO weeks (the newest week's is already one of the 7).
    assert!((9..=11).contains(&kept.len()), "kept {}", kept.len());
    // Every decision says why; a forgotten one, which rules did not keep it.
    for d in report["plan"]["decisions"].as_array().unwrap() {
        let first = d["reasons"][0].as_str().unwrap();
        assert_eq!(
            d["keep"].as_bool().unwrap(),
            !first.starts_with("no rule keeps it (daily 7, weekly 4)"),
            "{d}"
        );
    }
    let after = du(&store);
    eprintln!("store {before} -> {after} bytes, {} kept", kept.len());
    assert!(
        after < before * 2 / 3,
        "store did not shrink: {before} -> {after}"
    );
    for id in kept {
        check_restore(&store, id, &dir.path().join("out"), &want[id]);
    }
    snap_ok(&store, &["verify", "--read-data"]);
}

fn du(p: &Path) -> u64 {
    let mut n = 0;
    for e in fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        n += if m.is_dir() { du(&e.path()) } else { m.len() };
    }
    n
}

#[test]
fn killed_gc_never_loses_kept_data() {
    let dir = tempfile::tempdir().unwrap();
    let (src, store, db) = setup(dir.path());
    let mut want = HashMap::new();
    let mut rng = Rng(99);
    let mut day = 0;
    let take = |want: &mut HashMap<String, _>, day: &mut u64| {
        churn(&src, *day, &db);
        fs::write(
            src.join("files/big-changing.bin"),
            Rng(*day + 1000).bytes(4 << 20),
        )
        .unwrap();
        let out = snap_json(&store, &["take", src.to_str().unwrap()]);
        want.insert(out["id"].as_str().unwrap().to_string(), expected(&src));
        *day += 1;
    };
    for _ in 0..4 {
        take(&mut want, &mut day);
    }
    let t = Instant::now();
    snap_ok(&store, &["gc", "--keep-last", "3"]);
    let full = t.elapsed().max(Duration::from_millis(20));
    for _ in 0..20 {
        take(&mut want, &mut day);
        take(&mut want, &mut day);
        let mut child = Command::new(snap_bin())
            .args([
                "--store",
                store.to_str().unwrap(),
                "gc",
                "--keep-last",
                "3",
                "--repack-threshold",
                "1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full.mul_f64((rng.next() % 1000) as f64 / 1000.0 * 1.5));
        let _ = child.kill();
        child.wait().unwrap();
        snap_ok(&store, &["verify"]);
    }
    snap_ok(&store, &["verify", "--read-data"]);
    let list = snap_json(&store, &["list"]);
    // Every snapshot still listed restores; the 3 newest are always among them.
    let ids: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.len() >= 3);
    for id in &ids {
        check_restore(&store, id, &dir.path().join("out"), &want[id]);
    }
}

#[test]
fn take_and_gc_race_in_parallel_processes() {
    let dir = tempfile::tempdir().unwrap();
    let (src, store, db) = setup(dir.path());
    let mut want = HashMap::new();
    for round in 0..20u64 {
        churn(&src, round, &db);
        let snapshot_of_src = expected(&src);
        let take = Command::new(snap_bin())
            .args([
                "--store",
                store.to_str().unwrap(),
                "--json",
                "take",
                src.to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let gc = Command::new(snap_bin())
            .args([
                "--store",
                store.to_str().unwrap(),
                "gc",
                "--keep-last",
                "2",
                "--repack-threshold",
                "1",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let out = take.wait_with_output().unwrap();
        assert!(out.status.success());
        let gc = gc.wait_with_output().unwrap();
        assert!(gc.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        want.insert(v["id"].as_str().unwrap().to_string(), snapshot_of_src);
    }
    snap_ok(&store, &["verify", "--read-data"]);
    for s in snap_json(&store, &["list"]).as_array().unwrap() {
        let id = s["id"].as_str().unwrap();
        check_restore(&store, id, &dir.path().join("out"), &want[id]);
    }
}
