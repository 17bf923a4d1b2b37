//! The configuration file `snap.toml`: the store, named sources, a policy per
//! tier, remotes, jobs with schedules, and monitoring outputs. Found by
//! `--config`, `$SNAP_CONFIG`, `./snap.toml`, then the platform config
//! directory (`~/.config/snap/snap.toml`). Every error names its line.
//!
//! ```toml
//! store = "/var/lib/snap"
//! [sources.app]
//! paths = ["/srv/app/data"]
//! checkpoint = true
//! [policy]                      # the local tier
//! keep_within = "30d"
//! [remotes.bucket]
//! url = "gs://my-bucket/snap"
//! policy = { keep_within = "90d" }
//! [watches.app]                # followed by `snap daemon`: a point per commit
//! paths = ["/srv/app/data/app.db"]
//! remote = "bucket"             # each point in the bucket within lag_seconds (10)
//! [jobs.nightly]
//! action = "take"               # take | gc | mirror | verify
//! schedule = "daily 03:00"      # or a cron expression: "0 3 * * *"
//! [monitoring]
//! log = "/var/log/snap/jobs.jsonl"
//! textfile = "/var/lib/prometheus/node-exporter/snap.prom"
//! ```

use crate::error::{Error, Result};
use crate::retention::{GroupBy, Policy};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

mod check;
mod env;
mod watch;
pub use env::expand_env;
pub use watch::Watch;

/// A `snap.toml`: the store, sources, policies, remotes, jobs and monitoring.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The store directory.
    pub store: Option<PathBuf>,
    /// What `take` snapshots, by name.
    #[serde(default)]
    pub sources: BTreeMap<String, Source>,
    /// The local tier's retention policy.
    #[serde(default)]
    pub policy: Option<Spanned<Policy>>,
    /// How retention groups snapshots.
    #[serde(default)]
    pub group_by: GroupBy,
    /// Remotes by name.
    #[serde(default)]
    pub remotes: BTreeMap<String, RemoteConfig>,
    /// Scheduled jobs by name.
    #[serde(default)]
    pub jobs: BTreeMap<String, Job>,
    /// Databases `snap daemon` watches continuously, by name.
    #[serde(default)]
    pub watches: BTreeMap<String, Watch>,
    /// Where job results go.
    #[serde(default)]
    pub monitoring: Monitoring,
    /// How `snap schedule install` runs the jobs: user and credentials.
    #[serde(default)]
    pub service: Service,
    /// Where the text came from, for messages.
    #[serde(skip)]
    pub path: PathBuf,
}

/// One thing to snapshot.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Files, directories and databases.
    pub paths: Vec<PathBuf>,
    /// Tags for its snapshots.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Globs to leave out.
    #[serde(default)]
    pub excludes: Vec<String>,
    /// `wal_checkpoint(TRUNCATE)` first, skipped when busy.
    #[serde(default)]
    pub checkpoint: bool,
    /// The full `integrity_check` instead of `quick_check`.
    #[serde(default)]
    pub integrity_check: bool,
    /// A missing path is nothing to back up, not an error.
    #[serde(default)]
    pub allow_missing: bool,
}

/// A remote and its retention tier.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// `gs://BUCKET/PREFIX` or `file:///PATH`.
    pub url: Spanned<String>,
    /// This remote's retention policy (e.g. 90 days).
    pub policy: Option<Spanned<Policy>>,
    /// Mirror unencrypted when the store has no recipient.
    #[serde(default)]
    pub plaintext: bool,
    /// The identity (private key) file that opens this remote, on a host
    /// that prunes, verifies or restores from it (never on the backed-up one).
    pub identity_file: Option<String>,
    /// A fleet bucket: this store mirrors into `hosts/<its store id>/`,
    /// and an operator sees every host's (`snap fleet status`).
    #[serde(default)]
    pub fleet: bool,
    /// A fleet's budget: `fleet status` fails for a host whose newest
    /// record or last mirror is older (`26h`, `90m`).
    pub max_age: Option<String>,
    /// Budgets of single hosts, by host name or store id.
    #[serde(default)]
    pub host_max_age: BTreeMap<String, String>,
}

impl RemoteConfig {
    /// The fleet budgets it names.
    pub fn fleet_options(&self) -> Result<crate::fleet::FleetOptions> {
        let parse = |t: &String| {
            humantime::parse_duration(t).map_err(|e| Error::Invalid(format!("max_age {t:?}: {e}")))
        };
        Ok(crate::fleet::FleetOptions {
            max_age: self.max_age.as_ref().map(parse).transpose()?,
            budgets: self
                .host_max_age
                .iter()
                .map(|(h, t)| Ok((h.clone(), parse(t)?)))
                .collect::<Result<_>>()?,
        })
    }
}

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// `snap take` of the sources.
    Take,
    /// `snap gc` with the tier's policy.
    Gc,
    /// `snap mirror` to a remote.
    Mirror,
    /// `snap verify`.
    Verify,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Take => "take",
            Action::Gc => "gc",
            Action::Mirror => "mirror",
            Action::Verify => "verify",
        })
    }
}

/// A scheduled job.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// What it does.
    pub action: Action,
    /// When (see `schedule::Schedule::parse`).
    pub schedule: Option<Spanned<String>>,
    /// take: the sources to snapshot (default: all).
    #[serde(default)]
    pub sources: Vec<Spanned<String>>,
    /// mirror, and gc of a remote tier: the remote's name.
    pub remote: Option<Spanned<String>>,
    /// verify: re-read every pack, or this percentage of them.
    #[serde(default)]
    pub read_data: bool,
    /// Verify this percentage of the packs.
    pub sample: Option<f64>,
    /// verify: only the newest snapshot.
    #[serde(default)]
    pub latest: bool,
}

/// How the scheduled jobs run (`snap schedule install`): as whom, and with
/// which credential settings in their environment (a systemd unit or a
/// cron line starts with an almost empty one).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The user the jobs run as (systemd `User=`); root when unset.
    pub user: Option<String>,
    /// A file of `NAME=value` lines read into the environment (systemd
    /// `EnvironmentFile=`): e.g. `GOOGLE_APPLICATION_CREDENTIALS=…`,
    /// `AWS_…`, `AZURE_STORAGE_CONNECTION_STRING=…`. Keep it readable only
    /// by that user.
    pub environment_file: Option<PathBuf>,
    /// Variables set in the environment (systemd `Environment=`).
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

/// Where results go: a JSON log and a Prometheus textfile.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Monitoring {
    /// One JSON line per job run is appended here.
    pub log: Option<PathBuf>,
    /// A Prometheus textfile for node_exporter, rewritten after every job.
    pub textfile: Option<PathBuf>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The system-wide configuration, the last place looked.
pub(crate) const SYSTEM_CONFIG: &str = "/etc/snap/snap.toml";

impl Config {
    /// Where the configuration is looked for, in order: `explicit`,
    /// `$SNAP_CONFIG`, `./snap.toml`, `~/.config/snap/snap.toml`, then
    /// `SYSTEM_CONFIG`.
    pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
        if let Some(p) = explicit {
            return Some(p.to_path_buf());
        }
        if let Some(p) = std::env::var_os("SNAP_CONFIG") {
            return Some(PathBuf::from(p));
        }
        let here = PathBuf::from("snap.toml");
        if here.exists() {
            return Some(here);
        }
        dirs::config_dir()
            .map(|d| d.join("snap/snap.toml"))
            .into_iter()
            .chain([PathBuf::from(SYSTEM_CONFIG)])
            .find(|p| p.exists())
    }

    /// Reads, expands `${VAR}`, parses and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Invalid(format!(
                "configuration file {} does not exist",
                path.display()
            )),
            _ => Error::io("read config", path)(e),
        })?;
        let text = expand_env(&text, path, |name| std::env::var(name).ok())?;
        Config::parse(&text, path)
    }

    /// Parses and validates; every error names `path:line`.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let at = |offset: usize, msg: String| {
            Error::Invalid(format!(
                "{}:{}: {msg}",
                path.display(),
                line_of(text, offset)
            ))
        };
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            at(offset, e.message().to_string())
        })?;
        config.path = path.to_path_buf();
        check::check(&config, &at)?;
        Ok(config)
    }

    /// A remote's URL by name; a value with "://" is already a URL.
    pub fn remote_url(&self, name_or_url: &str) -> Result<String> {
        if name_or_url.contains("://") {
            return Ok(name_or_url.to_string());
        }
        self.remotes
            .get(name_or_url)
            .map(|r| r.url.get_ref().clone())
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "no remote named {name_or_url:?} in {}",
                    self.path.display()
                ))
            })
    }

    /// Where this store (`store_id`) mirrors to remote `name_or_url`: its
    /// URL, or in a fleet bucket its own prefix there.
    pub fn mirror_url(&self, name_or_url: &str, store_id: &str) -> Result<String> {
        let url = self.remote_url(name_or_url)?;
        match self.remote(name_or_url).is_some_and(|r| r.fleet) {
            true => Ok(crate::fleet::host_url(&url, store_id)),
            false => Ok(url),
        }
    }

    /// The remote named `name`, if configured.
    pub fn remote(&self, name: &str) -> Option<&RemoteConfig> {
        self.remotes.get(name)
    }

    /// The retention policy of remote `name`.
    pub fn remote_policy(&self, name: &str) -> Option<Policy> {
        self.remotes
            .get(name)?
            .policy
            .as_ref()
            .map(|p| p.get_ref().clone())
    }

    /// The local tier's policy.
    pub fn local_policy(&self) -> Option<Policy> {
        self.policy.as_ref().map(|p| p.get_ref().clone())
    }
}

#[cfg(test)]
mod tests;
