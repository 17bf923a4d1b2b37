//! mirror: store -> diff remote listing -> upload packs -> upload records last.
//!
//! The remote holds the store's own layout under its prefix:
//! `config`, `packs/<2 hex>/<64 hex>.pack`, `snapshots/<64 hex>.json`.
//! Invariant: a snapshot record is uploaded only after every pack in the
//! store is on the remote, so the remote never names a missing pack; every
//! object is named by its content and never overwritten.

mod pull;
mod remote;

pub use pull::{clone, gc_remote, remote_snapshots, view, CloneReport};
pub use remote::Remote;

use crate::error::{Error, Result};
use crate::id::{PackId, SnapshotId};
use crate::store::Store;
use std::collections::HashMap;
use std::time::Instant;

/// The object key of a pack on a remote.
pub fn pack_key(id: &PackId) -> String {
    let hex = id.to_hex();
    format!("packs/{}/{hex}.pack", &hex[..2])
}

/// The object key of a snapshot record on a remote.
pub fn snapshot_key(id: &SnapshotId) -> String {
    format!("snapshots/{id}.json")
}

/// How `mirror` pushes.
#[derive(Clone, Debug, Default)]
pub struct MirrorOptions {
    /// Re-read and re-hash this share (0..=1) of the remote's packs.
    pub verify: f64,
    /// How long to wait for the store.
    pub lock_wait: crate::store::LockWait,
}

/// What `mirror` did.
#[derive(Debug, Default, serde::Serialize)]
pub struct MirrorReport {
    /// The remote's URL.
    pub remote: String,
    /// Packs sent.
    pub packs_uploaded: u64,
    /// Snapshot records sent.
    pub records_uploaded: u64,
    /// Bytes sent.
    pub bytes_uploaded: u64,
    /// Packs the remote had already.
    pub packs_already_there: u64,
    /// Remote packs re-read (`verify`).
    pub packs_verified: u64,
    /// Wall time.
    pub duration_ms: u64,
    /// Upload rate.
    pub throughput_mib_s: f64,
    /// Everything that went wrong, by object; empty on success.
    pub problems: Vec<String>,
}

/// Checks a pack's bytes against the name in its key and decodes its
/// header; `what` says whose copy it is in an error.
pub(crate) fn check_pack(key: &str, bytes: &[u8], what: &str) -> Result<()> {
    let named = key
        .rsplit('/')
        .next()
        .and_then(|n| n.strip_suffix(".pack"))
        .and_then(PackId::from_hex);
    if named != Some(PackId::of(bytes)) {
        return Err(Error::corrupt(
            format!("{what} {key}"),
            "its bytes do not match its name",
        ));
    }
    crate::format::pack::decode_pack(bytes).map(|_| ())
}

/// Remote packs by id with their sizes.
fn remote_packs(remote: &Remote) -> Result<HashMap<PackId, u64>> {
    Ok(remote
        .list("packs/")?
        .into_iter()
        .filter_map(|(path, size)| {
            let name = path.rsplit('/').next()?;
            Some((PackId::from_hex(name.strip_suffix(".pack")?)?, size))
        })
        .collect())
}

/// Pushes the store to `remote`. Idempotent and resumable: a run that was
/// interrupted is completed by the next one.
pub fn mirror(store: &Store, remote: &Remote, opts: &MirrorOptions) -> Result<MirrorReport> {
    let start = Instant::now();
    let _lock = store.lock("mirror", opts.lock_wait.0)?;
    let mut report = MirrorReport {
        remote: remote.url.clone(),
        ..Default::default()
    };
    let config = serde_json::to_vec_pretty(store.config()).expect("config encodes");
    match remote.size("config")? {
        None => remote.put_new("config", config)?,
        Some(_) => {
            let theirs: crate::StoreConfig = serde_json::from_slice(&remote.read("config")?)
                .map_err(|e| Error::corrupt(format!("config on {}", remote.url), e.to_string()))?;
            if theirs.store_id != store.config().store_id {
                return Err(Error::Invalid(format!(
                    "{} holds another store ({}); mirror each store to its own prefix",
                    remote.url, theirs.store_id
                )));
            }
        }
    }
    let there = remote_packs(remote)?;
    let mut todo = Vec::new();
    for (id, path) in store.pack_files()? {
        let size = std::fs::metadata(&path)
            .map_err(Error::io("stat", &path))?
            .len();
        match there.get(&id) {
            Some(s) if *s == size => report.packs_already_there += 1,
            Some(s) => report.problems.push(format!(
                "{}: {s} bytes on the remote, {size} here",
                pack_key(&id)
            )),
            None => todo.push((pack_key(&id), path)),
        }
    }
    let total: u64 = todo
        .iter()
        .filter_map(|(_, p)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = store.progress();
    bar.start("mirror", Some(total));
    // A corrupt local pack is never uploaded: `verify --read-data` names what it affects.
    let check = |key: &str, bytes: &[u8]| check_pack(key, bytes, "local pack for");
    for (key, result) in remote.upload(todo, &check, bar)? {
        match result {
            Ok(n) => {
                report.packs_uploaded += 1;
                report.bytes_uploaded += n;
            }
            Err(e) => report.problems.push(format!("{key}: {e}")),
        }
    }
    bar.finish();
    // Records go last, and only when every pack made it.
    if report.problems.is_empty() {
        let records: std::collections::HashSet<String> = remote
            .list("snapshots/")?
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        for id in store.snapshot_ids()? {
            let key = snapshot_key(&id);
            if !records.contains(&key) {
                let path = store.snapshot_path(&id);
                let bytes = std::fs::read(&path).map_err(Error::io("read", &path))?;
                if SnapshotId::of(&bytes) != id {
                    report.problems.push(format!(
                        "{}: a corrupt record, not uploaded",
                        path.display()
                    ));
                    continue;
                }
                remote.put_new(&key, bytes.clone())?;
                report.records_uploaded += 1;
                report.bytes_uploaded += bytes.len() as u64;
            }
        }
    }
    if opts.verify > 0.0 {
        verify_sample(remote, opts.verify, &mut report)?;
    }
    report.duration_ms = start.elapsed().as_millis() as u64;
    report.throughput_mib_s =
        report.bytes_uploaded as f64 / 1048576.0 / start.elapsed().as_secs_f64().max(1e-3);
    Ok(report)
}

/// Re-reads a share of the remote's packs and checks each against its name.
fn verify_sample(remote: &Remote, share: f64, report: &mut MirrorReport) -> Result<()> {
    let mut packs: Vec<PackId> = remote_packs(remote)?.into_keys().collect();
    packs.sort();
    // A deterministic spread: every pack whose id falls in the first `share` of the id space.
    let limit = (share.clamp(0.0, 1.0) * 65536.0) as u32;
    for id in packs
        .into_iter()
        .filter(|id| (u16::from_be_bytes([id.0[0], id.0[1]]) as u32) < limit.max(1))
    {
        let bytes = remote.read(&pack_key(&id))?;
        report.packs_verified += 1;
        if PackId::of(&bytes) != id {
            report.problems.push(format!(
                "{}: content does not match its name",
                pack_key(&id)
            ));
        } else if let Err(e) = crate::format::pack::decode_pack(&bytes) {
            report.problems.push(format!("{}: {e}", pack_key(&id)));
        }
    }
    Ok(())
}
