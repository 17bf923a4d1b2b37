//! Jobs from the configuration: run one (`snap run JOB`), or all on their
//! schedules (`snap daemon`). Every run appends one JSON line to the log,
//! updates the per-job state in `STORE/jobs.json`, and rewrites the
//! Prometheus textfile, so monitoring sees every outcome.

mod actions;
mod textfile;
pub use textfile::write_textfile;

/// Whether a run succeeded, and its figures.
type Outcome = Result<(bool, serde_json::Value)>;
use crate::config::{Action, Config, Job};
use crate::error::{Error, Result};
use crate::mirror::{self, Remote};
use crate::schedule::{Clock, Schedule};
use crate::source::sqlite::CaptureOptions;
use crate::store::{Staging, Store};
use crate::TakeOptions;
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One run of one job: the JSON log line.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job's name.
    pub job: String,
    /// What it did.
    pub action: Action,
    /// When it started.
    pub start: DateTime<FixedOffset>,
    /// When it ended.
    pub end: DateTime<FixedOffset>,
    /// How long it ran.
    pub duration_seconds: f64,
    /// `ok` or `failed`.
    pub outcome: String,
    /// The action's figures (bytes added, freed, uploaded, …).
    pub figures: serde_json::Value,
    /// Why it failed.
    pub error: Option<String>,
    /// What the run noticed and could not do, or repaired (a remote that
    /// had lost its objects, snapshots held back, files skipped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl JobRecord {
    /// The run succeeded.
    pub fn ok(&self) -> bool {
        self.outcome == "ok"
    }
}

/// The last run and last success of each job (`STORE/jobs.json`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct JobState {
    /// Per job.
    pub jobs: BTreeMap<String, JobStatus>,
}

/// The last run and last success of one job.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct JobStatus {
    /// When the daemon first saw the job: a job never run is not "missed" before this.
    pub since: Option<DateTime<FixedOffset>>,
    /// The last run.
    pub last: Option<JobRecord>,
    /// When it last succeeded.
    pub last_success: Option<DateTime<FixedOffset>>,
}

/// The jobs' state file, in the store.
const STATE: &str = "jobs.json";

/// Runs configured jobs: one now, or all on their schedules.
pub struct JobRunner<'a> {
    /// The configuration.
    pub config: &'a Config,
    /// The local store.
    pub store: Store,
    /// Time (the system's, or a virtual one in tests).
    pub clock: &'a dyn Clock,
    /// How long each job waits for the store.
    pub lock_wait: Duration,
}

impl JobRunner<'_> {
    /// The per-job state in `STORE/jobs.json`.
    pub fn load_state(&self) -> Result<JobState> {
        match self.store.read_file(STATE)? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| Error::corrupt(STATE, e.to_string())),
            None => Ok(JobState::default()),
        }
    }

    fn save_state(&self, state: &JobState) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(state).expect("state encodes");
        self.store.write_file(STATE, &bytes, Staging::Tmp)
    }

    fn job(&self, name: &str) -> Result<&Job> {
        self.config.jobs.get(name).ok_or_else(|| {
            Error::NotFound(format!(
                "no job named {name:?} in {}",
                self.config.path.display()
            ))
        })
    }

    /// Runs `name` now and records the outcome (log line, state, textfile).
    pub fn run(&self, name: &str) -> Result<JobRecord> {
        let job = self.job(name)?;
        let start = self.clock.now().fixed_offset();
        let t = Instant::now();
        let result = self.execute(job, start);
        let (outcome, mut figures, error) = match result {
            Ok((true, f)) => ("ok", f, None),
            Ok((false, f)) => ("failed", f, Some("see figures".to_string())),
            Err(e) => ("failed", json!({}), Some(e.to_string())),
        };
        let warnings = match figures.as_object_mut().and_then(|f| f.remove("warnings")) {
            Some(serde_json::Value::Array(w)) => w
                .into_iter()
                .filter_map(|w| w.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let elapsed = t.elapsed();
        let record = JobRecord {
            job: name.to_string(),
            action: job.action,
            start,
            end: start + chrono::Duration::from_std(elapsed).unwrap_or_default(),
            duration_seconds: elapsed.as_secs_f64(),
            outcome: outcome.to_string(),
            figures,
            error,
            warnings,
        };
        self.record(&record)?;
        Ok(record)
    }

    /// Opens a remote with the identity its config names (or the environment's).
    fn opened(&self, remote: &Remote, name: &str) -> Result<mirror::Opened> {
        let file = self
            .config
            .remote(name)
            .and_then(|r| r.identity_file.as_deref());
        let ids = mirror::crypt::identities(file.map(std::path::Path::new))?;
        mirror::open_remote(remote, &ids)
    }

    fn remote(&self, name: &str) -> Result<Arc<Remote>> {
        let url = self
            .config
            .mirror_url(name, &self.store.config().store_id)?;
        Ok(Arc::new(Remote::open(&url)?))
    }

    /// Take options for a configured source.
    pub fn take_options(
        &self,
        source: &str,
        time: Option<DateTime<FixedOffset>>,
    ) -> Result<TakeOptions> {
        let s = self.config.sources.get(source).ok_or_else(|| {
            Error::Invalid(format!(
                "no source named {source:?} in {}",
                self.config.path.display()
            ))
        })?;
        Ok(TakeOptions {
            paths: s.paths.clone(),
            tags: s.tags.clone(),
            excludes: s.excludes.clone(),
            time,
            allow_missing: s.allow_missing,
            sqlite: CaptureOptions {
                checkpoint: s.checkpoint,
                integrity_check: s.integrity_check,
                lock_wait: None,
                ..Default::default()
            },
            lock_wait: crate::LockWait(self.lock_wait),
            ..Default::default()
        })
    }

    fn record(&self, r: &JobRecord) -> Result<()> {
        if let Some(log) = &self.config.monitoring.log {
            if let Some(dir) = log.parent() {
                std::fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(Error::io("open log", log))?;
            let line = serde_json::to_string(r).expect("record encodes");
            writeln!(f, "{line}")
                .and_then(|_| f.sync_data())
                .map_err(Error::io("append to", log))?;
        }
        let mut state = self.load_state()?;
        let entry = state.jobs.entry(r.job.clone()).or_default();
        entry.since.get_or_insert(r.start);
        if r.ok() {
            entry.last_success = Some(r.start);
        }
        entry.last = Some(r.clone());
        self.save_state(&state)?;
        if let Some(path) = &self.config.monitoring.textfile {
            write_textfile(path, &state)?;
        }
        Ok(())
    }

    /// Runs every scheduled job when due, one at a time, until `stop` is set
    /// or the clock reaches `stop_at`. Returns the number of runs.
    pub fn daemon(
        &self,
        stop: &AtomicBool,
        stop_at: Option<DateTime<chrono::Local>>,
    ) -> Result<u64> {
        let schedules: Vec<(String, Schedule)> = self
            .config
            .jobs
            .iter()
            .filter_map(|(n, j)| {
                Some((
                    n.clone(),
                    Schedule::parse(j.schedule.as_ref()?.get_ref()).ok()?,
                ))
            })
            .collect();
        if schedules.is_empty() {
            return Err(Error::Invalid(format!(
                "no job in {} has a schedule",
                self.config.path.display()
            )));
        }
        let mut state = self.load_state()?;
        let now = self.clock.now().fixed_offset();
        for (name, _) in &schedules {
            state
                .jobs
                .entry(name.clone())
                .or_default()
                .since
                .get_or_insert(now);
        }
        self.save_state(&state)?;
        let mut runs = 0;
        while !stop.load(Ordering::Relaxed) {
            let now = self.clock.now();
            if stop_at.is_some_and(|s| now >= s) {
                break;
            }
            let state = self.load_state()?;
            // Due: a scheduled time has passed since the job last started (or
            // since the daemon first saw it). Missed runs collapse into one.
            let mut due: Vec<(DateTime<chrono::Local>, &str)> = schedules
                .iter()
                .filter_map(|(name, s)| {
                    let st = state.jobs.get(name)?;
                    let baseline = st.last.as_ref().map(|l| l.start).or(st.since)?;
                    let last_time = s.last_at_or_before(now)?;
                    (last_time > baseline).then_some((last_time, name.as_str()))
                })
                .collect();
            due.sort();
            if let Some((_, name)) = due.first() {
                self.run(name)?;
                runs += 1;
                continue;
            }
            let mut next = schedules
                .iter()
                .map(|(_, s)| s.next_after(now))
                .min()
                .expect("a schedule");
            if let Some(s) = stop_at {
                next = next.min(s);
            }
            if !self.clock.sleep_until(next, stop) {
                break;
            }
        }
        Ok(runs)
    }
}
