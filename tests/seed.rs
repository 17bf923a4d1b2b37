//! The seed scenario, end to end on a virtual clock: a server whose live
//! database is backed up at 03:00 every day for 100 days, with local gc (30
//! days), a mirror to a GCS emulator, remote gc (90 days) and a weekly
//! restore-and-verify, all run by `snap daemon` from one config file. At the
//! end the local store holds 30 days, the bucket 90, every kept snapshot
//! restores, and the job log shows every run.

mod common;
use common::*;
use rusqlite::Connection;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[test]
fn hundred_days_of_unattended_backups() {
    if emulator_bin().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(&dir.path().join("emu"));
    let (data, store) = (dir.path().join("data"), dir.path().join("store"));
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("settings.json"), b"{\"mode\": \"production\"}").unwrap();
    let db = data.join("app.db");
    {
        let c = Connection::open(&db).unwrap();
        c.execute_batch("PRAGMA journal_mode=wal; CREATE TABLE events(id INTEGER PRIMARY KEY, body TEXT NOT NULL);").unwrap();
    }
    let config = dir.path().join("snap.toml");
    fs::write(
        &config,
        format!(
            r#"store = {store:?}

[sources.app]
paths = [{data:?}]
checkpoint = true

[policy]
keep_within = "30d"

[remotes.bucket]
url = "gs://snaptest/seed"
plaintext = true
policy = {{ keep_within = "90d" }}

[jobs.backup]
action = "take"
schedule = "daily 03:00"

[jobs.prune]
action = "gc"
schedule = "daily 03:30"

[jobs.offsite]
action = "mirror"
remote = "bucket"
schedule = "daily 04:00"

[jobs.offsite-prune]
action = "gc"
remote = "bucket"
schedule = "weekly sun 04:30"

[jobs.weekly-verify]
action = "verify"
latest = true
read_data = true
schedule = "weekly sun 05:00"

[monitoring]
log = {log:?}
textfile = {prom:?}
"#,
            log = dir.path().join("jobs.jsonl"),
            prom = dir.path().join("snap.prom"),
        ),
    )
    .unwrap();
    // The application keeps writing while the daemon works.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let c = Connection::open(&db).unwrap();
            c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                c.execute(
                    "INSERT INTO events(body) VALUES (?1)",
                    [format!("event {i}")],
                )
                .unwrap();
                i += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };
    let t = std::time::Instant::now();
    let out = std::process::Command::new(snap_bin())
        .env("TZ", "UTC")
        .env("STORAGE_EMULATOR_HOST", emu.host())
        .args([
            "--config",
            config.to_str().unwrap(),
            "daemon",
            "--virtual-clock",
            "2026-01-01T00:00:00Z",
            "--stop-at",
            "2026-04-11T00:00:00Z",
        ])
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    eprintln!("100 days in {:.1} s", t.elapsed().as_secs_f64());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let log: Vec<serde_json::Value> = fs::read_to_string(dir.path().join("jobs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let runs = |job: &str| log.iter().filter(|l| l["job"] == job).count();
    assert_eq!(
        (runs("backup"), runs("prune"), runs("offsite")),
        (100, 100, 100)
    );
    assert_eq!(
        (runs("offsite-prune"), runs("weekly-verify")),
        (14, 14),
        "Sundays from Jan 4 to Apr 5"
    );
    let failed: Vec<_> = log.iter().filter(|l| l["outcome"] != "ok").collect();
    assert!(failed.is_empty(), "{failed:?}");

    let local = snap_json(&store, &["list"]);
    let local = local.as_array().unwrap();
    assert_eq!(local.len(), 31, "30 days before the newest, inclusive");
    assert!(local[0]["time"]
        .as_str()
        .unwrap()
        .starts_with("2026-03-11T03:00:00"));
    let remote: serde_json::Value = serde_json::from_str(&ok(snap_at(
        &emu.host(),
        &store,
        &["--json", "list", "--remote", "gs://snaptest/seed"],
    )))
    .unwrap();
    let remote = remote.as_array().unwrap();
    assert!(
        (91..=97).contains(&remote.len()),
        "remote holds {}",
        remote.len()
    );
    assert!(
        remote[0]["time"].as_str().unwrap() >= "2026-01-05",
        "{}",
        remote[0]["time"]
    );
    // Every kept local snapshot restores to a database that passes its checks.
    for s in local {
        let id = s["id"].as_str().unwrap();
        let to = dir.path().join("restore");
        snap_ok(&store, &["restore", id, "--to", to.to_str().unwrap()]);
        assert_integrity_ok(&to.join("data/app.db"));
        fs::remove_dir_all(&to).unwrap();
    }
    // And snapshots only the bucket still holds restore from it.
    for s in [&remote[0], &remote[30]] {
        let to = dir.path().join("remote-restore");
        ok(snap_at(
            &emu.host(),
            &dir.path().join("none"),
            &[
                "restore",
                s["id"].as_str().unwrap(),
                "--remote",
                "gs://snaptest/seed",
                "--to",
                to.to_str().unwrap(),
            ],
        ));
        assert_integrity_ok(&to.join("data/app.db"));
        fs::remove_dir_all(&to).unwrap();
    }
    let prom = fs::read_to_string(dir.path().join("snap.prom")).unwrap();
    assert!(
        prom.contains("snap_last_success_timestamp_seconds{job=\"offsite\",action=\"mirror\"}"),
        "{prom}"
    );
}

fn assert_integrity_ok(db: &std::path::Path) {
    let c = Connection::open(db).unwrap();
    let ic: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ic, "ok", "{}", db.display());
}
