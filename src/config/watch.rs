//! `[watches.NAME]`: databases `snap daemon` follows continuously.

use serde::Deserialize;
use std::path::PathBuf;

/// One continuous watch (`snap watch`, run by `snap daemon`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    /// Databases, or directories whose databases are watched.
    pub paths: Vec<PathBuf>,
    /// Milliseconds between looks (default `watch::INTERVAL`, 500).
    pub interval_ms: Option<u64>,
    /// Tags recorded with every point.
    #[serde(default)]
    pub tags: Vec<String>,
    /// A remote (by name) every point is shipped to, within `lag_seconds`.
    pub remote: Option<String>,
    /// Seconds within which a point is on the remote (default 10).
    pub lag_seconds: Option<f64>,
}

impl Watch {
    /// Within how long a point reaches the remote.
    pub fn lag(&self) -> std::time::Duration {
        self.lag_seconds
            .map_or(crate::mirror::ship::LAG, std::time::Duration::from_secs_f64)
    }

    /// What is wrong with it, if anything.
    pub(crate) fn check<T>(
        &self,
        remotes: &std::collections::BTreeMap<String, T>,
    ) -> Result<(), String> {
        if self.paths.is_empty() || self.interval_ms == Some(0) {
            return Err("give its paths, and an interval_ms of at least 1".into());
        }
        if let Some(r) = self.remote.as_ref().filter(|r| !remotes.contains_key(*r)) {
            return Err(format!("no remote named {r:?}"));
        }
        if self
            .lag_seconds
            .is_some_and(|l| !(0.2..=86400.0).contains(&l))
        {
            return Err("lag_seconds must be between 0.2 and 86400".into());
        }
        Ok(())
    }

    /// The watch's options.
    pub fn options(&self) -> crate::watch::WatchOptions {
        crate::watch::WatchOptions {
            paths: self.paths.clone(),
            interval: self
                .interval_ms
                .map_or(crate::watch::INTERVAL, std::time::Duration::from_millis),
            tags: self.tags.clone(),
            ..Default::default()
        }
    }
}
