//! The jobs' Prometheus textfile (node_exporter's textfile collector):
//! one gauge series per job for each figure of its last run.

use super::{JobState, JobStatus};
use crate::durable;
use crate::error::{Error, Result};

/// A textfile series: name, help text, and its value for one job.
type Metric = (&'static str, &'static str, fn(&JobStatus) -> Option<f64>);

/// The Prometheus textfile (node_exporter's textfile collector), written atomically.
pub fn write_textfile(path: &std::path::Path, state: &JobState) -> Result<()> {
    let mut out = String::new();
    let metrics: [Metric; 6] = [
        (
            "snap_last_success_timestamp_seconds",
            "Start of the job's last successful run.",
            |s| s.last_success.map(|t| t.timestamp() as f64),
        ),
        (
            "snap_last_run_timestamp_seconds",
            "Start of the job's last run.",
            |s| s.last.as_ref().map(|l| l.start.timestamp() as f64),
        ),
        (
            "snap_last_run_success",
            "1 if the job's last run succeeded, else 0.",
            |s| s.last.as_ref().map(|l| if l.ok() { 1.0 } else { 0.0 }),
        ),
        (
            "snap_last_duration_seconds",
            "Duration of the job's last run.",
            |s| s.last.as_ref().map(|l| l.duration_seconds),
        ),
        (
            "snap_last_run_warnings",
            "Warnings of the job's last run (a remote that had lost its objects and was healed, snapshots held back, files skipped).",
            |s| s.last.as_ref().map(|l| l.warnings.len() as f64),
        ),
        (
            "snap_last_bytes",
            "Bytes the last run added (take), freed (gc) or uploaded (mirror).",
            |s| s.last.as_ref().and_then(|l| l.figures["bytes"].as_f64()),
        ),
    ];
    for (name, help, value) in metrics {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (job, s) in &state.jobs {
            if let Some(v) = value(s) {
                let action = s
                    .last
                    .as_ref()
                    .map(|l| serde_json::to_value(l.action).expect("action"))
                    .unwrap_or_default();
                out.push_str(&format!("{name}{{job=\"{job}\",action={action}}} {v}\n"));
            }
        }
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
    durable::write_atomic(dir, path, out.as_bytes())
}
