//! A remote's snapshot records: single records and batches of them, each
//! object checked against its name (and cached when a local store lends
//! its cache).

use super::crypt::Codec;
use super::layout;
use super::Remote;
use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::store::{Staging, Store};
use crate::Snapshot;
use std::path::Path;

/// The record and batch objects on the remote (key, size). Listed before
/// the packs, every pack a listed record needs is among the packs listed
/// after (a mirror creates a record's packs before it).
pub(crate) fn list_records(remote: &Remote) -> Result<Vec<(String, u64)>> {
    let mut listed = remote.list(layout::SNAPSHOTS)?;
    listed.extend(remote.list(layout::BATCHES)?);
    Ok(listed)
}

/// Records (id, decoded, plain bytes), oldest first; those in `cache` are
/// read locally. Each is checked against its name.
pub(crate) fn remote_records(
    remote: &Remote,
    codec: &Codec,
    cache: Option<(&Store, &Path)>,
) -> Result<Vec<(SnapshotId, Snapshot, Vec<u8>)>> {
    records_listed(remote, codec, cache, list_records(remote)?)
}

/// The records in `listed` (see `list_records`), as `remote_records`.
pub(crate) fn records_listed(
    remote: &Remote,
    codec: &Codec,
    cache: Option<(&Store, &Path)>,
    listed: Vec<(String, u64)>,
) -> Result<Vec<(SnapshotId, Snapshot, Vec<u8>)>> {
    let mut out = record_objects(remote, codec, cache, listed)?
        .into_iter()
        .flat_map(|(_, records)| records)
        .map(|b| Ok((SnapshotId::of(&b), Snapshot::decode(&b)?, b)))
        .collect::<Result<Vec<_>>>()?;
    out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
    // A record sent under two naming keys, or in two batches, is one snapshot.
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

/// The remote's batches of records: each one's key and records' bytes.
pub(crate) fn remote_batches(
    remote: &Remote,
    codec: &Codec,
) -> Result<Vec<(String, Vec<Vec<u8>>)>> {
    let listed = remote.list(layout::BATCHES)?;
    record_objects(remote, codec, None, listed)
}

/// The records in each of `listed` (records and batches: key, size), each
/// object checked against its name; those in `cache` read locally.
fn record_objects(
    remote: &Remote,
    codec: &Codec,
    cache: Option<(&Store, &Path)>,
    listed: Vec<(String, u64)>,
) -> Result<Vec<(String, Vec<Vec<u8>>)>> {
    let listed: Vec<([u8; 32], String, u64)> = listed
        .into_iter()
        .filter_map(|(k, size)| Some((layout::name_of(&k)?, k, size)))
        .collect();
    let cached = |name: &[u8; 32]| {
        let (local, dir) = cache?;
        let bytes = local.read_file(dir.join(hex::encode(name))).ok()??;
        codec
            .is_name(&SnapshotId::of(&bytes).0, name)
            .then_some(bytes)
    };
    let mut plain = Vec::new();
    let mut missing = Vec::new();
    for (name, key, size) in listed {
        match cached(&name) {
            Some(bytes) => plain.push((key, bytes)),
            None => missing.push((name, key, size)),
        }
    }
    let reads = remote.read_ranges(missing.iter().map(|(_, k, s)| (k.clone(), 0, *s)).collect());
    for ((name, key, _), stored) in missing.into_iter().zip(reads) {
        let bytes = codec.open(&key, &stored?)?;
        if !codec.is_name(&SnapshotId::of(&bytes).0, &name) {
            return Err(Error::corrupt(
                format!("remote record {key}"),
                "does not match its name",
            ));
        }
        if let Some((local, dir)) = cache {
            local.write_file(dir.join(hex::encode(name)), &bytes, Staging::Beside)?;
        }
        plain.push((key, bytes));
    }
    plain
        .into_iter()
        .map(|(key, bytes)| match key.starts_with(layout::BATCHES) {
            false => Ok((key, vec![bytes])),
            true => layout::decode_batch(&bytes)
                .map(|records| (key.clone(), records))
                .ok_or_else(|| {
                    Error::corrupt(format!("remote batch {key}"), "not a batch of records")
                }),
        })
        .collect()
}
