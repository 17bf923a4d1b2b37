//! Snapshot record: a small JSON document, immutable, named by the BLAKE3 of
//! its bytes. It is written last in a take, so its existence means every chunk
//! it reaches is durable and indexed.

use crate::error::{Error, Result};
use crate::id::{ChunkId, SnapshotId};
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

pub const RECORD_VERSION: u32 = 1;

/// The tag of the undo snapshot an in-place restore takes first.
pub const PRE_RESTORE: &str = "pre-restore";
/// The tag of the undo snapshot a recover takes first.
pub const PRE_RECOVER: &str = "pre-recover";

/// Whether snapshot tags make it an undo snapshot (one snap took itself
/// before it replaced something): `latest` passes over them, and retention
/// keeps them by a policy of their own.
pub(crate) fn is_undo(tags: &[String]) -> bool {
    tags.iter().any(|t| t == PRE_RESTORE || t == PRE_RECOVER)
}

/// The `check_kind` of a point's image: pages followed from the log are
/// not checked as they are recorded (`verify` checks every chunk's hash;
/// `restore` of a point can run `integrity_check`).
pub(crate) const UNCHECKED: &str = "none";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub time: DateTime<FixedOffset>,
    pub host: String,
    /// Absolute paths that were snapshotted; root `i` is stored in the top
    /// tree under the base name of `paths[i]`.
    pub paths: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Chunks of the encoded top tree, whose entries are the roots.
    pub tree: Vec<ChunkId>,
    #[serde(default)]
    pub parent: Option<SnapshotId>,
    pub stats: TakeStats,
    /// Files that could not be read (only with `--skip-unreadable`).
    #[serde(default)]
    pub skipped: Vec<Skipped>,
    /// One entry per database image captured through SQLite.
    #[serde(default)]
    pub databases: Vec<DatabaseSummary>,
    /// The exclude globs it was taken with (`diff --live` applies them too).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    /// Set when this is a point: one database's image at one commit,
    /// recorded by `watch` (its one path is the database).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<Point>,
}

/// What a point adds to a snapshot record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Point {
    /// Set on the first point of a window (a run of points that follows
    /// every commit): why the history before it is not continuous with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts: Option<String>,
    /// Set when the changes were not known from the log and every page was
    /// read: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_read: Option<String>,
    /// Pages read through SQLite for this point (changed, or all).
    pub pages_read: u64,
    /// Bytes of the log read to learn what changed.
    pub log_read: u64,
    /// Where the point's read transaction stood in the log (WAL mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogAt>,
}

/// A place in a database's write-ahead log (`source::wal`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogAt {
    /// The log's checkpoint sequence (its generation).
    pub seq: u32,
    pub salts: [u32; 2],
    /// The last frame the point's read transaction saw (0: none).
    pub last: u32,
    /// The checksum chain after that frame.
    pub checksum: [u32; 2],
    pub page_size: u32,
    pub big_endian: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeStats {
    pub files: u64,
    pub dirs: u64,
    pub databases: u64,
    /// Plain bytes of all content in the snapshot.
    pub size: u64,
    /// Bytes actually read from the source (unchanged files are not read).
    pub read: u64,
    /// Bytes this snapshot grew the store by: its packs (entries, compressed,
    /// with headers) and the index's growth on disk.
    pub added: u64,
    /// Plain bytes of the chunks this snapshot added.
    pub added_raw: u64,
    pub chunks_added: u64,
    pub duration_ms: u64,
    /// Of `duration_ms`, the structural checks of databases captured from
    /// a point (a read of every page, reported apart).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub check_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseSummary {
    /// Path relative to the snapshot's top (root base name first).
    pub path: String,
    pub page_size: u32,
    pub page_count: u64,
    pub journal_mode: String,
    pub sqlite_version: String,
    pub check: String,
    pub check_kind: String,
    pub tables: Vec<(String, u64)>,
}

impl DatabaseSummary {
    /// No check failed: it passed, or (a point) none was run.
    pub fn check_ok(&self) -> bool {
        self.check == "ok" || self.check_kind == UNCHECKED
    }
}

impl Snapshot {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("record encodes")
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Snapshot> {
        let s: Snapshot = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt("snapshot record", e.to_string()))?;
        if s.version != RECORD_VERSION {
            return Err(Error::corrupt(
                "snapshot record",
                format!("unknown version {}", s.version),
            ));
        }
        Ok(s)
    }

    /// `path` as the snapshot names it (`root/sub/file`, as `ls` shows it):
    /// given so, or as it was taken on its host (an absolute path inside
    /// one of `paths`). Not found when no root holds it.
    pub(crate) fn inner_path(&self, path: &str) -> Result<String> {
        let roots: Vec<(&str, String)> = self
            .paths
            .iter()
            .map(|p| {
                let name = std::path::Path::new(p)
                    .file_name()
                    .map_or("root".into(), |n| n.to_string_lossy().into_owned());
                (p.as_str(), name)
            })
            .collect();
        let names = || {
            roots
                .iter()
                .map(|r| r.1.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let p = std::path::Path::new(path);
        if p.is_absolute() {
            for (root, name) in &roots {
                if let Ok(rest) = p.strip_prefix(root) {
                    let rest = rest.to_string_lossy();
                    return Ok(if rest.is_empty() {
                        name.clone()
                    } else {
                        format!("{name}/{rest}")
                    });
                }
            }
            return Err(Error::NotFound(format!(
                "{path} is not in the snapshot (it holds {})",
                self.paths.join(", ")
            )));
        }
        let inner = path.trim_start_matches("./").trim_matches('/');
        let first = inner.split('/').next().unwrap_or("");
        if !roots.iter().any(|r| r.1 == first) {
            return Err(Error::NotFound(format!(
                "{path} is not in the snapshot: paths inside it start with one of its roots ({}), or are absolute paths as taken",
                names()
            )));
        }
        Ok(inner.to_string())
    }

    /// True when every database check in this snapshot passed.
    pub fn checks_ok(&self) -> bool {
        self.databases.iter().all(|d| d.check_ok())
    }
}
