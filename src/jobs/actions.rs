//! What each action of a job does, and the figures its run records.

use super::{JobRunner, Outcome};
use crate::config::{Action, Job};
use crate::error::Error;
use crate::gc::GcOptions;
use crate::mirror::{self, MirrorOptions};
use crate::VerifyOptions;
use chrono::{DateTime, FixedOffset};
use serde_json::json;

impl JobRunner<'_> {
    /// Runs `job`'s action: whether it succeeded, and its figures.
    pub(super) fn execute(&self, job: &Job, now: DateTime<FixedOffset>) -> Outcome {
        match job.action {
            Action::Take => self.take_job(job, now),
            Action::Gc => self.gc_job(job, now),
            Action::Mirror => self.mirror_job(job),
            Action::Verify => self.verify_job(job),
        }
    }

    fn take_job(&self, job: &Job, now: DateTime<FixedOffset>) -> Outcome {
        let names: Vec<String> = if job.sources.is_empty() {
            self.config.sources.keys().cloned().collect()
        } else {
            job.sources.iter().map(|s| s.get_ref().clone()).collect()
        };
        let mut figures = Vec::new();
        let mut warnings = Vec::new();
        let mut ok = true;
        for name in names {
            let r = crate::take(&self.store, &self.take_options(&name, Some(now))?)?;
            ok &= r.ok();
            warnings.extend(r.warnings.iter().map(|w| format!("{name}: {w}")));
            figures.push(json!({
                "source": name, "id": r.id.map(|i| i.to_hex()),
                "added": r.snapshot.as_ref().map(|s| s.stats.added),
                "size": r.snapshot.as_ref().map(|s| s.stats.size),
                "databases": r.snapshot.as_ref().map(|s| &s.databases),
            }));
        }
        let added: u64 = figures.iter().filter_map(|f| f["added"].as_u64()).sum();
        Ok((
            ok,
            json!({"snapshots": figures, "bytes": added, "warnings": warnings}),
        ))
    }

    fn gc_job(&self, job: &Job, now: DateTime<FixedOffset>) -> Outcome {
        let (policy, remote) = match &job.remote {
            Some(r) => (
                self.config.remote_policy(r.get_ref()),
                Some((self.remote(r.get_ref())?, r.get_ref().clone())),
            ),
            None => (self.config.local_policy(), None),
        };
        let opts = GcOptions {
            policy: policy.ok_or_else(|| Error::Invalid("gc job without a policy".into()))?,
            group_by: self.config.group_by,
            now: Some(now),
            lock_wait: crate::LockWait(self.lock_wait),
            ..Default::default()
        };
        let r = match remote {
            Some((remote, name)) => {
                let opened = self.opened(&remote, &name)?;
                let ids = opened.codec.identities().to_vec();
                crate::fleet::prune(remote, &opened, Some(&self.store), &opts, &ids)?
            }
            None => crate::gc::gc(&self.store, &opts)?,
        };
        Ok((
            true,
            json!({"forgotten": r.forgotten, "kept": r.kept, "packs_deleted": r.packs_deleted, "bytes": r.bytes_freed}),
        ))
    }

    fn mirror_job(&self, job: &Job) -> Outcome {
        let remote = self.remote(job.remote.as_ref().expect("checked by config").get_ref())?;
        let opts = MirrorOptions {
            verify: job.sample.unwrap_or(0.0) / 100.0,
            lock_wait: crate::LockWait(self.lock_wait),
            plaintext: self
                .config
                .remote(job.remote.as_ref().expect("checked").get_ref())
                .is_some_and(|r| r.plaintext),
            rescan: false,
            bundle: false,
            no_probe: false,
            identities: Vec::new(),
            catalog_every: None,
        };
        let r = mirror::mirror(&self.store, &remote, &opts)?;
        let warnings: Vec<&String> = r.warnings.iter().chain(&r.held_back).collect();
        Ok((
            r.problems.is_empty(),
            json!({"packs": r.packs_uploaded, "records": r.records_uploaded, "bytes": r.bytes_uploaded,
                   "problems": r.problems, "warnings": warnings}),
        ))
    }

    fn verify_job(&self, job: &Job) -> Outcome {
        let opts = VerifyOptions {
            snapshots: if job.latest {
                vec!["latest".into()]
            } else {
                vec![]
            },
            read_data: job.read_data,
            sample: job.sample.map(|p| p / 100.0),
            lock_wait: crate::LockWait(self.lock_wait),
            ..Default::default()
        };
        let r = match &job.remote {
            Some(name) => {
                let dir =
                    tempfile::tempdir().map_err(Error::io("create temporary directory", "/tmp"))?;
                // No local packs: verifying a remote means reading the remote's bytes.
                let remote = self.remote(name.get_ref())?;
                let opened = self.opened(&remote, name.get_ref())?;
                let (view, _) = mirror::view(remote, &opened, &dir.path().join("view"), None)?;
                crate::verify(&view, &opts)?
            }
            None => crate::verify(&self.store, &opts)?,
        };
        Ok((
            r.ok(),
            json!({"snapshots": r.snapshots, "chunks": r.chunks, "packs_read": r.packs_read, "databases_checked": r.databases_checked, "problems": r.problems}),
        ))
    }
}
