//! The daemon's watch metrics, for node_exporter's textfile collector:
//! beside the jobs' textfile `DIR/NAME.prom`, `DIR/NAME-watches.prom`,
//! rewritten atomically at most once a second while something happens,
//! and at stop. Counters count since the daemon started.

use snap::watch::WatchEvent;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One database's counters.
#[derive(Default)]
struct Db {
    points: u64,
    full_reads: u64,
    failed: u64,
    bytes: u64,
    last_point: f64,
}

/// One watch's shipping.
#[derive(Default)]
struct Ship {
    runs: u64,
    failures: u64,
    last_ok: f64,
}

/// Each database's counters, each watch's shipping, the last write.
type State = (
    BTreeMap<(String, String), Db>,
    BTreeMap<String, Ship>,
    Option<Instant>,
);

/// Every watch's metrics, and where they go.
pub struct Metrics {
    path: Option<PathBuf>,
    inner: Mutex<State>,
}

fn now() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

impl Metrics {
    /// Metrics written beside `textfile` (none without one).
    pub fn new(textfile: Option<&Path>) -> Metrics {
        let path = textfile.map(|t| {
            let stem = t
                .file_stem()
                .map_or("snap".into(), |s| s.to_string_lossy().into_owned());
            t.with_file_name(format!("{stem}-watches.prom"))
        });
        Metrics {
            path,
            inner: Mutex::new(Default::default()),
        }
    }

    /// Counts a watch event.
    pub fn event(&self, watch: &str, e: &WatchEvent) {
        let (path, f): (&Path, fn(&mut Db)) = match e {
            WatchEvent::Point {
                path,
                full_read,
                added,
                ..
            } => {
                let mut inner = self.inner.lock().expect("metrics");
                let db = inner
                    .0
                    .entry((watch.into(), path.display().to_string()))
                    .or_default();
                db.points += 1;
                db.full_reads += u64::from(full_read.is_some());
                db.bytes += added;
                db.last_point = now();
                drop(inner);
                return self.write(false);
            }
            WatchEvent::Failed { path, .. } => (path, |d| d.failed += 1),
            _ => return,
        };
        let mut inner = self.inner.lock().expect("metrics");
        f(inner
            .0
            .entry((watch.into(), path.display().to_string()))
            .or_default());
        drop(inner);
        self.write(false);
    }

    /// Counts a ship run.
    pub fn ship(&self, watch: &str, ok: bool) {
        let mut inner = self.inner.lock().expect("metrics");
        let s = inner.1.entry(watch.into()).or_default();
        s.runs += 1;
        match ok {
            true => s.last_ok = now(),
            false => s.failures += 1,
        }
        drop(inner);
        self.write(true);
    }

    /// Writes the file: at most once a second unless `now`.
    pub fn write(&self, now: bool) {
        let Some(path) = &self.path else { return };
        let mut inner = self.inner.lock().expect("metrics");
        if !now
            && inner
                .2
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        inner.2 = Some(Instant::now());
        let text = render(&inner.0, &inner.1);
        drop(inner);
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let _ = std::fs::create_dir_all(dir);
        let _ = snap::durable::write_atomic(dir, path, text.as_bytes());
    }
}

/// A series: name, kind, help, and its value for one row.
type Series<T> = (&'static str, &'static str, &'static str, fn(&T) -> f64);

/// Each series with its value for every row (its labels, its counters).
fn write_series<T>(out: &mut String, series: &[Series<T>], rows: Vec<(String, &T)>) {
    for (name, kind, help, value) in series {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, row) in &rows {
            out.push_str(&format!("{name}{{{labels}}} {}\n", value(row)));
        }
    }
}

/// The textfile's text.
fn render(dbs: &BTreeMap<(String, String), Db>, ships: &BTreeMap<String, Ship>) -> String {
    let series: [Series<Db>; 5] = [
        (
            "snap_watch_points_total",
            "counter",
            "Points recorded since the daemon started.",
            |d| d.points as f64,
        ),
        (
            "snap_watch_full_reads_total",
            "counter",
            "Points that read every page (the change was not known).",
            |d| d.full_reads as f64,
        ),
        (
            "snap_watch_failed_looks_total",
            "counter",
            "Looks that failed (the next one tries again).",
            |d| d.failed as f64,
        ),
        (
            "snap_watch_added_bytes_total",
            "counter",
            "Bytes the store grew by for points.",
            |d| d.bytes as f64,
        ),
        (
            "snap_watch_last_point_timestamp_seconds",
            "gauge",
            "When the newest point was recorded.",
            |d| d.last_point,
        ),
    ];
    let mut out = String::new();
    let rows = dbs
        .iter()
        .map(|((watch, path), d)| (format!("watch={watch:?},path={path:?}"), d));
    write_series(&mut out, &series, rows.collect());
    let series: [Series<Ship>; 3] = [
        (
            "snap_watch_ship_runs_total",
            "counter",
            "Runs shipping points to the remote.",
            |s| s.runs as f64,
        ),
        (
            "snap_watch_ship_failures_total",
            "counter",
            "Ship runs that failed (the points wait for the next).",
            |s| s.failures as f64,
        ),
        (
            "snap_watch_last_ship_timestamp_seconds",
            "gauge",
            "When the last ship run succeeded.",
            |s| s.last_ok,
        ),
    ];
    let rows = ships
        .iter()
        .map(|(watch, s)| (format!("watch={watch:?}"), s));
    write_series(&mut out, &series, rows.collect());
    out
}
