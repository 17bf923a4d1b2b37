//! A writer whose every commit keeps two invariants, run as a real process
//! (this test binary again, in `writer_process`): 100 accounts whose
//! balances always sum to 100,000, and a log whose sequence numbers are a
//! contiguous prefix 1..=n. After each commit it prints "n unix_seconds",
//! so a test knows when each commit completed. Any image of the database at
//! a commit boundary keeps both; an image of a state that never existed
//! (pages from two different commits) breaks one of them, or the
//! integrity check, with overwhelming likelihood.

use rusqlite::Connection;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const DB_VAR: &str = "SNAP_TEST_LEDGER_DB";
pub const RATE_VAR: &str = "SNAP_TEST_LEDGER_RATE";
/// Comma-separated extras: `truncate` (a TRUNCATE checkpoint every 300
/// commits), `vacuum` (a VACUUM every 700), `bulk` (a 2 MB insert every 500).
pub const MODE_VAR: &str = "SNAP_TEST_LEDGER_MODE";

/// A running writer process; its "n time" lines are read as they come (a
/// full pipe would stop it).
pub struct Writer {
    child: Child,
    lines: Option<std::thread::JoinHandle<Vec<(i64, f64)>>>,
}

/// Starts the writer on `db` at `rate` commits a second.
pub fn start(test_name: &str, db: &Path, rate: u32, mode: &str) -> Writer {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(DB_VAR, db)
        .env(RATE_VAR, rate.to_string())
        .env(MODE_VAR, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the writer");
    let out = child.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        std::io::BufReader::new(out)
            .lines()
            .map_while(|l| l.ok())
            .filter_map(|l| {
                let (n, t) = l.split_once(' ')?;
                Some((n.parse().ok()?, t.parse().ok()?))
            })
            .collect()
    });
    Writer {
        child,
        lines: Some(lines),
    }
}

impl Writer {
    /// Kills it (SIGKILL) and returns the commits it reported completed.
    pub fn kill(&mut self) -> Vec<(i64, f64)> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.lines.take().map_or(Vec::new(), |t| t.join().unwrap())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The writer's loop (never returns; the test kills it).
pub fn run(db: &Path, rate: u32, mode: &str) -> ! {
    let c = Connection::open(db).unwrap();
    c.busy_timeout(Duration::ZERO).unwrap();
    c.query_row("PRAGMA journal_mode=wal", [], |_| Ok(()))
        .unwrap();
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS acct(id INTEGER PRIMARY KEY, bal INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS seq(n INTEGER PRIMARY KEY, t REAL, pad BLOB);
         CREATE TABLE IF NOT EXISTS bulk(id INTEGER PRIMARY KEY, pad BLOB);
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 100)
         INSERT OR IGNORE INTO acct SELECT i, 1000 FROM s;",
    )
    .unwrap();
    let mut n: i64 = c
        .query_row("SELECT coalesce(max(n), 0) FROM seq", [], |r| r.get(0))
        .unwrap();
    let out = std::io::stdout();
    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    let mut next = Instant::now();
    loop {
        n += 1;
        let (a, b) = ((n * 7919) % 100 + 1, (n * 104_729) % 100 + 1);
        let commit = || -> rusqlite::Result<()> {
            c.execute_batch("BEGIN IMMEDIATE")?;
            c.execute("UPDATE acct SET bal = bal - 1 WHERE id = ?1", [a])?;
            c.execute("UPDATE acct SET bal = bal + 1 WHERE id = ?1", [b])?;
            c.execute(
                "INSERT INTO seq VALUES (?1, ?2, randomblob(300))",
                rusqlite::params![n, now()],
            )?;
            if mode.contains("bulk") && n % 500 == 0 {
                c.execute(
                    "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 500)
                     INSERT INTO bulk(pad) SELECT randomblob(4000) FROM s",
                    [],
                )?;
            }
            c.execute_batch("COMMIT")
        };
        while let Err(e) = commit() {
            let _ = c.execute_batch("ROLLBACK");
            eprintln!("busy: {e}");
            std::thread::sleep(Duration::from_millis(1));
        }
        writeln!(out.lock(), "{n} {}", now()).unwrap();
        if mode.contains("truncate") && n % 300 == 0 {
            let _ = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
        if mode.contains("vacuum") && n % 700 == 0 {
            let _ = c.execute_batch("VACUUM");
        }
        next += gap;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Checks a restored image: integrity, the sum, the contiguous log.
/// Returns its last sequence number.
pub fn check(db: &Path) -> Result<i64, String> {
    let c = Connection::open(db).map_err(|e| e.to_string())?;
    let q = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0));
    let ic: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    let sum = q("SELECT coalesce(sum(bal), 0) FROM acct").map_err(|e| e.to_string())?;
    let count = q("SELECT count(*) FROM seq").map_err(|e| e.to_string())?;
    let max = q("SELECT coalesce(max(n), 0) FROM seq").map_err(|e| e.to_string())?;
    if ic != "ok" || sum != 100_000 || count != max {
        return Err(format!(
            "integrity {ic}, sum {sum}, {count} log rows up to {max}"
        ));
    }
    Ok(max)
}
