//! Reading a remote back: its snapshot list, a *view* (a local store with an
//! index built from the remote's pack headers, reading chunks from the remote
//! by ranged reads), a full clone, and remote retention.

use super::{pack_key, remote_packs, snapshot_key, Remote};
use crate::error::{Error, Result};
use crate::format::pack;
use crate::gc::{mark, plan_store, Fate, GcOptions, GcReport, PackInfo};
use crate::id::{PackId, SnapshotId};
use crate::store::{durable, Index, Store, StoreConfig, StoreReader};
use crate::Snapshot;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Bytes fetched from the end of a pack to find its header in one read.
const TAIL: u64 = 64 << 10;

fn remote_config(remote: &Remote) -> Result<StoreConfig> {
    let bytes = remote.read("config").map_err(|e| match e {
        Error::Remote { message, .. }
            if message.contains("NotFound") || message.contains("not found") =>
        {
            Error::NotFound(format!("{} holds no snap store", remote.url))
        }
        other => other,
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::corrupt(format!("config on {}", remote.url), e.to_string()))
}

/// Every snapshot record on the remote, oldest first, each checked against its id.
pub fn remote_snapshots(remote: &Remote) -> Result<Vec<(SnapshotId, Snapshot)>> {
    Ok(remote_records(remote)?
        .into_iter()
        .map(|(id, s, _)| (id, s))
        .collect())
}

/// Every record object on the remote: id, object path, size.
fn listed_records(remote: &Remote) -> Result<Vec<(SnapshotId, String, u64)>> {
    Ok(remote
        .list("snapshots/")?
        .into_iter()
        .filter_map(|(path, size)| {
            let id = path
                .rsplit('/')
                .next()?
                .strip_suffix(".json")
                .and_then(SnapshotId::from_hex)?;
            Some((id, path, size))
        })
        .collect())
}

/// Reads records concurrently, each checked against its id.
fn fetch_records(
    remote: &Remote,
    listed: &[&(SnapshotId, String, u64)],
) -> Result<Vec<(SnapshotId, Vec<u8>)>> {
    let reads = remote.read_ranges(
        listed
            .iter()
            .map(|(_, p, size)| (p.clone(), 0, *size))
            .collect(),
    );
    listed
        .iter()
        .zip(reads)
        .map(|((id, path, _), bytes)| {
            let bytes = bytes?;
            if SnapshotId::of(&bytes) != *id {
                return Err(Error::corrupt(
                    format!("remote record {path}"),
                    "does not match its id",
                ));
            }
            Ok((*id, bytes))
        })
        .collect()
}

fn decode_sorted(
    records: Vec<(SnapshotId, Vec<u8>)>,
) -> Result<Vec<(SnapshotId, Snapshot, Vec<u8>)>> {
    let mut out = records
        .into_iter()
        .map(|(id, bytes)| Ok((id, Snapshot::decode(&bytes)?, bytes)))
        .collect::<Result<Vec<_>>>()?;
    out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
    Ok(out)
}

/// Records with their raw bytes, read concurrently.
fn remote_records(remote: &Remote) -> Result<Vec<(SnapshotId, Snapshot, Vec<u8>)>> {
    let listed = listed_records(remote)?;
    decode_sorted(fetch_records(remote, &listed.iter().collect::<Vec<_>>())?)
}

/// A local store in `dir` that stands for the remote: the remote's config and
/// records, an index built from the remote's pack headers, and no packs:
/// chunks are read from the remote with ranged reads, so a restore fetches
/// only what it needs. Returns the store and each pack's chunk ids.
///
/// With `local` (the store that mirrors to this remote), pack headers and
/// records already fetched once are kept in `local/remote-cache/` (they are
/// immutable and checked against their names), and chunks are read from
/// `local`'s own copy of a pack when it has one: same name, same bytes.
pub fn view(
    remote: Arc<Remote>,
    dir: &Path,
    local: Option<&Store>,
) -> Result<(Store, Vec<PackInfo>)> {
    let mut store = Store::init(dir, remote_config(&remote)?)?;
    let cache = local.map(|l| {
        l.root()
            .join("remote-cache")
            .join(&blake3::hash(remote.url.as_bytes()).to_hex()[..16])
    });
    let packs = remote_packs(&remote)?;
    let index = Index::open(&store.index_path())?;
    let mut contents = Vec::new();
    let cached = |id: &PackId| {
        cache
            .as_ref()
            .and_then(|c| std::fs::read(c.join("headers").join(id.to_hex())).ok())
    };
    let missing: Vec<(&PackId, &u64)> = packs
        .iter()
        .filter(|(id, _)| cached(id).is_none())
        .collect();
    let tails: Vec<(String, u64, u64)> = missing
        .iter()
        .map(|(id, size)| (pack_key(id), size.saturating_sub(TAIL), (**size).min(TAIL)))
        .collect();
    let mut fetched = HashMap::new();
    for ((id, size), tail) in missing.iter().zip(remote.read_ranges(tails)) {
        let tail = header_tail(&remote, id, **size, tail?)?;
        if let Some(c) = &cache {
            durable::create_dir_durable(&c.join("headers"))?;
            durable::write_atomic(
                &store.tmp_dir(),
                &c.join("headers").join(id.to_hex()),
                &tail,
            )?;
        }
        fetched.insert(**id, tail);
    }
    for (id, size) in &packs {
        let tail = fetched
            .remove(id)
            .or_else(|| cached(id))
            .expect("fetched or cached");
        let entries = decode_tail(id, *size, &tail)?;
        index.add_pack(id, *size, &entries)?;
        contents.push(PackInfo {
            id: *id,
            size: *size,
            entries,
        });
    }
    for (id, snap, bytes) in remote_records_cached(&remote, cache.as_deref(), &store)? {
        durable::write_atomic(&store.tmp_dir(), &store.snapshot_path(&id), &bytes)?;
        index.add_snapshot(&id, snap.time.timestamp())?;
    }
    drop(index);
    if let Some(l) = local {
        store = store.with_local_packs(l.root().to_path_buf());
    }
    Ok((store.with_remote(remote), contents))
}

/// Remote records, reading those in `cache` locally (checked against their ids).
fn remote_records_cached(
    remote: &Remote,
    cache: Option<&Path>,
    store: &Store,
) -> Result<Vec<(SnapshotId, Snapshot, Vec<u8>)>> {
    let Some(cache) = cache else {
        return remote_records(remote);
    };
    let dir = cache.join("records");
    durable::create_dir_durable(&dir)?;
    let listed = listed_records(remote)?;
    let local = |id: &SnapshotId| {
        std::fs::read(dir.join(id.to_hex()))
            .ok()
            .filter(|b| SnapshotId::of(b) == *id)
    };
    let mut records = Vec::new();
    let mut missing = Vec::new();
    for item in &listed {
        match local(&item.0) {
            Some(bytes) => records.push((item.0, bytes)),
            None => missing.push(item),
        }
    }
    for (id, bytes) in fetch_records(remote, &missing)? {
        durable::write_atomic(&store.tmp_dir(), &dir.join(id.to_hex()), &bytes)?;
        records.push((id, bytes));
    }
    decode_sorted(records)
}

fn named(id: &PackId) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::Corrupt { detail, .. } => {
            Error::corrupt(format!("remote pack {}", pack_key(id)), detail)
        }
        other => other,
    }
}

/// The header and trailer of a pack, from a read of its last bytes (a second
/// read only when the header is larger than that).
fn header_tail(remote: &Remote, id: &PackId, size: u64, tail: Vec<u8>) -> Result<Vec<u8>> {
    if tail.len() < pack::TRAILER_LEN {
        return Err(named(id)(Error::corrupt(
            "pack",
            "shorter than its trailer",
        )));
    }
    let (header_len, _) =
        pack::decode_trailer(&tail[tail.len() - pack::TRAILER_LEN..], size).map_err(named(id))?;
    let need = header_len as u64 + pack::TRAILER_LEN as u64;
    if need <= tail.len() as u64 {
        Ok(tail[tail.len() - need as usize..].to_vec())
    } else {
        remote.read_range(&pack_key(id), size - need, need)
    }
}

/// Decodes header + trailer bytes of a pack of `size` bytes.
fn decode_tail(id: &PackId, size: u64, tail: &[u8]) -> Result<Vec<pack::PackEntry>> {
    if tail.len() < pack::TRAILER_LEN {
        return Err(named(id)(Error::corrupt(
            "pack",
            "shorter than its trailer",
        )));
    }
    let (header_len, sum) =
        pack::decode_trailer(&tail[tail.len() - pack::TRAILER_LEN..], size).map_err(named(id))?;
    if header_len as usize + pack::TRAILER_LEN != tail.len() {
        return Err(named(id)(Error::corrupt(
            "pack",
            "cached header has the wrong length",
        )));
    }
    let data_len = size - tail.len() as u64;
    pack::decode_header(&tail[..header_len as usize], &sum, data_len).map_err(named(id))
}

/// What `clone` did.
#[derive(Debug, Default, serde::Serialize)]
pub struct CloneReport {
    /// The new store.
    pub store: String,
    /// Packs downloaded.
    pub packs: u64,
    /// Snapshot records downloaded.
    pub snapshots: u64,
    /// Bytes downloaded.
    pub bytes: u64,
    /// Wall time.
    pub duration_ms: u64,
}

/// Rebuilds a complete local store at `dest` from the remote alone: packs
/// (each checked against its name) and records downloaded, index rebuilt.
pub fn clone(
    remote: &Remote,
    dest: &Path,
    progress: &crate::progress::Reporter,
) -> Result<CloneReport> {
    let start = Instant::now();
    let config = remote_config(remote)?;
    // A clone that was interrupted is resumed: its destination is the same
    // store, and packs already there arrived whole (written atomically, each
    // checked against its name first).
    let store = match Store::open(dest) {
        Ok(s) if s.config().store_id == config.store_id => s,
        Ok(s) => {
            return Err(Error::Invalid(format!(
                "{} holds another store ({}); clone into an empty or missing directory",
                dest.display(),
                s.config().store_id
            )))
        }
        Err(_) => Store::init(dest, config).map_err(|e| match e {
            Error::Invalid(m) => Error::Invalid(format!(
                "{m} (an interrupted clone of this remote is resumed in place; anything else needs an empty directory)"
            )),
            other => other,
        })?,
    };
    let _lock = store.lock("clone", std::time::Duration::ZERO)?;
    let mut packs = remote_packs(remote)?;
    packs.retain(|id, _| !store.pack_path(id).exists());
    let total = packs.values().sum();
    let bar = progress;
    bar.start("clone", Some(total));
    let items = packs
        .keys()
        .map(|id| (pack_key(id), store.pack_path(id)))
        .collect();
    let check = |key: &str, bytes: &[u8]| super::check_pack(key, bytes, "remote pack");
    let mut report = CloneReport {
        store: dest.display().to_string(),
        ..Default::default()
    };
    for (_, r) in remote.download(items, &store.tmp_dir(), &check, bar) {
        report.bytes += r?;
        report.packs += 1;
    }
    bar.finish();
    for (id, _, bytes) in remote_records(remote)? {
        durable::write_atomic(&store.tmp_dir(), &store.snapshot_path(&id), &bytes)?;
        report.snapshots += 1;
        report.bytes += bytes.len() as u64;
    }
    crate::store::packs::rebuild_index(&store)?;
    report.duration_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

/// Applies a policy to the remote's own snapshot records and deletes the
/// remote packs no kept remote snapshot needs, through the same checked pack
/// plan as local gc (no repacking remotely). Records are deleted before
/// packs, so a crash leaves only unneeded packs. `local` is locked
/// meanwhile, so no mirror of it runs at the same time.
pub fn gc_remote(remote: Arc<Remote>, local: Option<&Store>, opts: &GcOptions) -> Result<GcReport> {
    let start = Instant::now();
    let _lock = local
        .map(|s| s.lock("gc --remote", opts.lock_wait.0))
        .transpose()?;
    let dir = tempfile::tempdir().map_err(Error::io("create temporary directory", "/tmp"))?;
    let (view, packs) = view(remote.clone(), &dir.path().join("view"), local)?;
    let (plan, kept, bad_records) = plan_store(&view, opts)?;
    let index = Index::open(&view.index_path())?;
    let reader = StoreReader::new(&view, &index)?;
    let live = mark(&reader, kept.iter())?;
    let pack_plan = crate::gc::plan::plan_packs(
        &packs,
        live,
        |id| reader.index.get(id).ok().flatten(),
        |deltas| crate::gc::delta_bases(&reader.packs, deltas),
        f64::INFINITY,
    )?;
    crate::gc::plan::check(&pack_plan)?;
    let dead: Vec<PackId> = pack_plan.with_fate(Fate::Delete).collect();
    let mut report = GcReport {
        dry_run: opts.dry_run,
        forgotten: plan.forget().count(),
        kept: plan.keep().count(),
        live_chunks: pack_plan.live.len() as u64,
        packs_deleted: dead.len() as u64,
        bytes_freed: pack_plan.bytes_freed(),
        packs: dead.iter().map(|p| (p.to_hex(), Fate::Delete)).collect(),
        bad_records,
        ..Default::default()
    };
    if !opts.dry_run {
        for d in plan.forget() {
            remote.delete(&snapshot_key(
                &SnapshotId::from_hex(&d.id).expect("ids from the remote"),
            ))?;
        }
        for p in &dead {
            remote.delete(&pack_key(p))?;
        }
    }
    report.plan = plan;
    report.duration_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}
