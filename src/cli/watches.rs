//! The watches `snap daemon` runs: one thread per configured watch, and one
//! per watch that ships its points to a remote. Window starts, full reads,
//! failed looks and failed ships go to stderr and the monitoring log.

use super::watch_metrics::Metrics;
use super::Ctx;
use anyhow::Result;
use snap::mirror::ship::{Ship, Shipped};
use snap::mirror::{MirrorOptions, Remote};
use snap::watch::{WatchEvent, WatchReport};
use snap::Store;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A running watch, and its shipper when it has a remote.
pub struct Running {
    name: String,
    watch: JoinHandle<snap::Result<WatchReport>>,
    ship: Option<(JoinHandle<()>, Arc<AtomicBool>)>,
}

/// Starts every configured watch, stopping with `stop`.
pub fn start(
    ctx: &Ctx,
    config: &snap::config::Config,
    stop: &Arc<AtomicBool>,
) -> Result<Vec<Running>> {
    let mut out = Vec::new();
    let metrics = Arc::new(Metrics::new(config.monitoring.textfile.as_deref()));
    for (name, w) in &config.watches {
        let store = Store::open_or_init(&ctx.store_path)?;
        let mut opts = w.options();
        opts.stop = Some(stop.clone());
        let log = config.monitoring.log.clone();
        let ship = match &w.remote {
            Some(r) => {
                let url = config.mirror_url(r, &store.config().store_id)?;
                let remote = Arc::new(Remote::open(&url)?);
                let plaintext = config.remote(r).is_some_and(|c| c.plaintext);
                snap::mirror::ship::ready(Some(&store), plaintext)?;
                Some((Arc::new(Ship::new(w.lag())), remote, plaintext))
            }
            None => None,
        };
        let noted = ship.as_ref().map(|(s, _, _)| s.clone());
        let (name2, log2, m) = (name.clone(), log.clone(), metrics.clone());
        let watch = std::thread::spawn(move || {
            let r = snap::watch::watch(&store, &opts, |e| {
                if let (Some(s), WatchEvent::Point { .. }) = (&noted, e) {
                    s.noted();
                }
                m.event(&name2, e);
                note_watch(&name2, log2.as_deref(), e)
            });
            m.write(true);
            r
        });
        let ship = ship.map(|(ship, remote, plaintext)| {
            let (name, url, m) = (name.clone(), remote.url.clone(), metrics.clone());
            spawn_ship(
                &ctx.store_path,
                ship,
                remote,
                plaintext,
                move |s, failing| {
                    m.ship(&name, matches!(s, Shipped::Sent(_)));
                    note_ship(&name, &url, log.as_deref(), s, failing)
                },
            )
        });
        out.push(Running {
            name: name.clone(),
            watch,
            ship,
        });
    }
    Ok(out)
}

/// A shipper thread: ships `ship`'s points to `remote` until the returned
/// flag is set, then once more for what is waiting. `on` hears every run
/// (and whether runs were failing before it).
pub fn spawn_ship(
    store: &Path,
    ship: Arc<Ship>,
    remote: Arc<Remote>,
    plaintext: bool,
    mut on: impl FnMut(&Shipped, &mut bool) + Send + 'static,
) -> (JoinHandle<()>, Arc<AtomicBool>) {
    let done = Arc::new(AtomicBool::new(false));
    let (store, done2) = (Store::open(store), done.clone());
    let thread = std::thread::spawn(move || {
        let store = match store {
            Ok(s) => s,
            Err(e) => return on(&Shipped::Failed(e), &mut true),
        };
        let opts = MirrorOptions {
            plaintext,
            lock_wait: snap::LockWait(std::time::Duration::from_secs(60)),
            ..Default::default()
        };
        let mut failing = false;
        ship.run(&store, &remote, &opts, &done2, |s| on(&s, &mut failing));
    });
    (thread, done)
}

/// Waits for each watch to stop, then ships what it recorded last.
pub fn join(running: Vec<Running>) {
    for r in running {
        match r.watch.join() {
            Ok(Ok(w)) => eprintln!(
                "snap daemon: watch {}: stopped after {} ({} read every page, {} failed looks)",
                r.name,
                super::count(w.points, "point"),
                w.full_reads,
                w.failures
            ),
            Ok(Err(e)) => eprintln!("snap daemon: watch {} stopped: {e}", r.name),
            Err(_) => eprintln!("snap daemon: watch {} panicked", r.name),
        }
        if let Some((thread, done)) = r.ship {
            done.store(true, Ordering::Relaxed);
            let _ = thread.join();
        }
    }
}

/// A ship run: failures (and the first success after them) are said.
fn note_ship(name: &str, url: &str, log: Option<&Path>, s: &Shipped, failing: &mut bool) {
    let time = chrono::Local::now().to_rfc3339();
    let line = match s {
        Shipped::Failed(e) => {
            *failing = true;
            serde_json::json!({"watch": name, "event": "ship_failed", "remote": url, "error": e.to_string(), "time": time})
        }
        Shipped::Sent(r) if *failing || !r.problems.is_empty() || !r.warnings.is_empty() => {
            *failing = false;
            serde_json::json!({"watch": name, "event": "shipped", "remote": url,
                "records": r.records_uploaded, "objects": r.packs_uploaded, "bytes": r.bytes_uploaded,
                "problems": r.problems, "warnings": r.warnings, "time": time})
        }
        Shipped::Sent(_) => return,
    };
    say(log, &line);
}

fn note_watch(name: &str, log: Option<&Path>, e: &WatchEvent) {
    let time = chrono::Local::now().to_rfc3339();
    let line = match e {
        WatchEvent::Point {
            path,
            full_read,
            starts,
            ..
        } if full_read.is_some() || starts.is_some() => serde_json::json!({
            "watch": name, "event": "point", "path": path,
            "full_read": full_read, "starts": starts, "time": time,
        }),
        WatchEvent::Point { .. } => return,
        WatchEvent::Ended { path, why } => serde_json::json!({
            "watch": name, "event": "ended", "path": path, "why": why, "time": time,
        }),
        WatchEvent::PutOff { path, why } => serde_json::json!({
            "watch": name, "event": "put_off", "path": path, "why": why, "time": time,
        }),
        WatchEvent::Failed { path, error } => serde_json::json!({
            "watch": name, "event": "failed", "path": path, "error": error, "time": time,
        }),
    };
    say(log, &line);
}

/// To stderr, and appended to the monitoring log.
fn say(log: Option<&Path>, line: &serde_json::Value) {
    eprintln!("snap daemon: {line}");
    if let Some(log) = log {
        use std::io::Write;
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .and_then(|mut f| writeln!(f, "{line}"));
    }
}

/// Each configured watch's databases: their health, and whether the newest
/// point should be in the watch's bucket by now and the store has no note
/// of sending it (older than the lag and 30 s).
pub fn health(
    store: &Store,
    config: &snap::config::Config,
) -> Result<Vec<(String, snap::watch::Health, bool)>> {
    let now = chrono::Local::now();
    let mut out = Vec::new();
    for (name, w) in &config.watches {
        // Behind: written 10 s (and a look) after the newest point.
        let grace = w.options().interval + std::time::Duration::from_secs(10);
        let url = w
            .remote
            .as_ref()
            .map(|r| config.mirror_url(r, &store.config().store_id))
            .transpose()?;
        let late =
            chrono::Duration::from_std(w.lag()).unwrap_or_default() + chrono::Duration::seconds(30);
        for h in snap::watch::health(store, &w.paths, grace)? {
            let unshipped = match (&url, &h.newest) {
                (Some(url), Some((id, t))) => {
                    *t + late < now && !snap::mirror::state::record_sent(store, url, id)
                }
                _ => false,
            };
            out.push((name.clone(), h, unshipped));
        }
    }
    Ok(out)
}

/// `health`, one line a database.
pub fn print_health(watches: &[(String, snap::watch::Health, bool)]) {
    for (name, h, unshipped) in watches {
        println!(
            "{:<16} watch   {}: newest point {}, last written {}{}{}",
            name,
            h.path.display(),
            h.newest
                .as_ref()
                .map_or("never".into(), |(_, t)| super::time(t)),
            h.written.as_ref().map_or("-".into(), super::time),
            if h.behind { "  BEHIND" } else { "" },
            if *unshipped {
                "  NOT SHIPPED (the daemon's log says why)"
            } else {
                ""
            }
        );
    }
}
