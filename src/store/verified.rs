//! `STORE/verified.json`: the outcome of the last whole verify of this
//! store, which each mirror's catalog carries to the fleet's operator.

use super::Store;
use crate::durable;
use crate::error::{Error, Result};
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

/// The last whole verify of a store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verified {
    /// When it ended.
    pub time: DateTime<FixedOffset>,
    /// Snapshots checked.
    pub snapshots: u64,
    /// Problems found (0: all well).
    pub problems: u64,
    /// Whether every pack was read and re-hashed too.
    pub read_data: bool,
}

impl Store {
    /// Notes the outcome of a whole verify (atomically replacing the last).
    pub(crate) fn note_verified(&self, v: &Verified) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(v).expect("encodes");
        durable::write_atomic(&self.tmp_dir(), &self.root.join("verified.json"), &bytes)
    }

    /// The last whole verify, if one was noted.
    pub(crate) fn last_verified(&self) -> Result<Option<Verified>> {
        let path = self.root.join("verified.json");
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::corrupt(path.display().to_string(), e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", &path)(e)),
        }
    }
}
