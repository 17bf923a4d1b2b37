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
}

impl Watch {
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
