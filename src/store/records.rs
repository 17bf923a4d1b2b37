//! Snapshot records in `snapshots/`: immutable JSON files named by the
//! BLAKE3 of their bytes. The records are the truth about which snapshots
//! exist; the index's catalog is a cache of them.

use super::{Snapshots, Store};
use crate::durable;
use crate::error::{Error, Result};
use crate::format::record::Snapshot;
use crate::id::SnapshotId;
use std::fs;

impl Store {
    /// Ids of every snapshot record in the store (the records are the truth;
    /// the index catalog is a cache of them).
    pub fn snapshot_ids(&self) -> Result<Vec<SnapshotId>> {
        let dir = self.root.join("snapshots");
        let mut out = Vec::new();
        for f in fs::read_dir(&dir).map_err(Error::io("read", &dir))? {
            let path = f.map_err(Error::io("read", &dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if let Some(id) = name.strip_suffix(".json").and_then(SnapshotId::from_hex) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Every record id, the most recently written first (by the record
    /// file's modification time: `stat`s only, no record is read).
    pub(crate) fn snapshot_ids_recent_first(&self) -> Result<Vec<SnapshotId>> {
        let mut ids: Vec<(std::time::SystemTime, SnapshotId)> = self
            .snapshot_ids()?
            .into_iter()
            .filter_map(|id| {
                let m = fs::metadata(self.snapshot_path(&id)).ok()?;
                Some((m.modified().ok()?, id))
            })
            .collect();
        ids.sort_by_key(|b| std::cmp::Reverse(b.0));
        Ok(ids.into_iter().map(|(_, id)| id).collect())
    }

    /// Whether the record `id` is in the store (not forgotten).
    pub(crate) fn has_snapshot(&self, id: &SnapshotId) -> bool {
        self.snapshot_path(id).exists()
    }

    /// Reads a snapshot record and checks it against its id.
    pub fn load_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        let path = self.snapshot_path(id);
        let bytes = fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound(format!("no snapshot {id} (it was forgotten)"))
            } else {
                Error::io("read", &path)(e)
            }
        })?;
        if SnapshotId::of(&bytes) != *id {
            return Err(Error::corrupt(
                format!("snapshot record {}", path.display()),
                "its bytes do not match its id",
            ));
        }
        Snapshot::decode(&bytes).map_err(|e| match e {
            Error::Corrupt { detail, .. } => {
                Error::corrupt(format!("snapshot record {}", path.display()), detail)
            }
            other => other,
        })
    }

    /// All readable snapshots, oldest first, and the records that are corrupt
    /// (each named with its problem). A record removed meanwhile (a gc running
    /// beside a lock-free `list`) is simply not listed; any other I/O error
    /// fails the call, so a record that exists is never silently skipped.
    pub fn snapshots_checked(&self) -> Result<(Snapshots, Vec<String>)> {
        let mut all = Vec::new();
        let mut bad = Vec::new();
        for id in self.snapshot_ids()? {
            match self.load_snapshot(&id) {
                Ok(s) => all.push((id, s)),
                Err(Error::NotFound(_)) => {}
                Err(e @ Error::Corrupt { .. }) => bad.push(e.to_string()),
                Err(e) => return Err(e),
            }
        }
        all.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok((all, bad))
    }

    /// All readable snapshots, oldest first (corrupt records are left out;
    /// `snapshots_checked` names them).
    pub fn snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        Ok(self.snapshots_checked()?.0)
    }

    /// Resolves a full id, a unique prefix of at least 6 hex digits, or `latest`.
    pub fn resolve(&self, spec: &str) -> Result<SnapshotId> {
        if spec == "latest" {
            return self
                .snapshots()?
                .pop()
                .map(|(id, _)| id)
                .ok_or_else(|| Error::NotFound("the store holds no snapshot".into()));
        }
        if spec.len() < 6 || !spec.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::Invalid(format!(
                "snapshot id {spec:?}: give `latest`, or at least 6 hex digits"
            )));
        }
        let spec = spec.to_ascii_lowercase();
        let matches: Vec<_> = self
            .snapshot_ids()?
            .into_iter()
            .filter(|id| id.to_hex().starts_with(&spec))
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::NotFound(format!("no snapshot {spec}"))),
            _ => Err(Error::Invalid(format!(
                "snapshot prefix {spec} is ambiguous ({} matches)",
                matches.len()
            ))),
        }
    }

    /// Writes a snapshot record atomically; this is the last step of a take.
    pub fn write_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotId> {
        let bytes = snapshot.encode();
        let id = SnapshotId::of(&bytes);
        self.put_record(&id, &bytes)?;
        Ok(id)
    }

    /// Writes a record's exact bytes (one read from a remote), atomically
    /// and durably, named `id`, which must be their hash.
    pub(crate) fn put_record(&self, id: &SnapshotId, bytes: &[u8]) -> Result<()> {
        if SnapshotId::of(bytes) != *id {
            return Err(Error::corrupt(
                format!("record {id}"),
                "does not match its name",
            ));
        }
        durable::write_atomic(&self.tmp_dir(), &self.snapshot_path(id), bytes)
    }

    /// A record's bytes as stored (unchecked: the caller checks its name).
    pub(crate) fn record_bytes(&self, id: &SnapshotId) -> Result<Vec<u8>> {
        let path = self.snapshot_path(id);
        fs::read(&path).map_err(Error::io("read", &path))
    }
}
