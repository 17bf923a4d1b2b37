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

    fn gc_options(
        &self,
        policy: Option<crate::retention::Policy>,
        now: DateTime<FixedOffset>,
    ) -> crate::Result<GcOptions> {
        Ok(GcOptions {
            policy: policy.ok_or_else(|| Error::Invalid("gc job without a policy".into()))?,
            group_by: self.config.group_by,
            now: Some(now),
            lock_wait: crate::LockWait(self.lock_wait),
            ..Default::default()
        })
    }

    /// A gc job on a fleet bucket prunes every host's prefix by the
    /// remote's policy; a host that fails is named, the others go on.
    fn gc_fleet(&self, name: &str, opts: &GcOptions) -> Outcome {
        let url = self.config.remote_url(name)?;
        let root = mirror::Remote::open(&url)?;
        let file = self
            .config
            .remote(name)
            .and_then(|r| r.identity_file.as_deref());
        let ids = mirror::crypt::identities(file.map(std::path::Path::new))?;
        let (mut sum, mut failed) = ([0u64; 4], Vec::new());
        for host in crate::fleet::hosts(&root)? {
            // A prefix a host has not finished its first mirror into.
            if root.size(&format!("hosts/{host}/config"))?.is_none() {
                continue;
            }
            let pruned = mirror::Remote::open(&crate::fleet::host_url(&url, &host)).and_then(|r| {
                let opened = mirror::open_remote(&r, &ids)?;
                crate::fleet::prune(std::sync::Arc::new(r), &opened, None, opts, &ids)
            });
            match pruned {
                Ok(r) => {
                    let figures = [
                        r.forgotten as u64,
                        r.kept as u64,
                        r.packs_deleted,
                        r.bytes_freed,
                    ];
                    sum.iter_mut().zip(figures).for_each(|(s, f)| *s += f);
                }
                Err(e) => failed.push(format!("host {host}: {e}")),
            }
        }
        Ok((
            failed.is_empty(),
            json!({"forgotten": sum[0], "kept": sum[1], "packs_deleted": sum[2], "bytes": sum[3], "failed": failed}),
        ))
    }

    fn gc_job(&self, job: &Job, now: DateTime<FixedOffset>) -> Outcome {
        let fleet = job.remote.as_ref().map(|r| r.get_ref().as_str());
        if let Some(name) = fleet.filter(|r| self.config.remote(r).is_some_and(|r| r.fleet)) {
            return self.gc_fleet(
                name,
                &self.gc_options(self.config.remote_policy(name), now)?,
            );
        }
        let (policy, remote) = match &job.remote {
            Some(r) => (
                self.config.remote_policy(r.get_ref()),
                Some((self.remote(r.get_ref())?, r.get_ref().clone())),
            ),
            None => (self.config.local_policy(), None),
        };
        let opts = self.gc_options(policy, now)?;
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
