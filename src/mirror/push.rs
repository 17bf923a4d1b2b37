//! The steps of `mirror`, each creating objects only (see `mirror`).

use super::crypt::Codec;
use super::layout::{self, record_key, Header, Keys};
use super::state::State;
use super::{MirrorReport, Remote};
use crate::error::{Error, Result};
use crate::id::{PackId, SnapshotId};
use crate::store::reader::read_chain;
use crate::store::{Store, StoreReader};
use std::collections::HashSet;

/// What creating `config` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Found {
    /// A new remote: `config` was created for the first time.
    New,
    /// `config` was there, as the local state says it should be.
    Known,
    /// `config` was there, but the local state knows nothing of this remote.
    Unknown,
    /// The state says `config` was sent, yet creating it succeeded: the
    /// remote lost its objects (a wiped or replaced bucket).
    Lost,
}

/// Creates the remote's `config` on every run: where it exists (as it
/// should) the create is refused, one cheap request; where the local state
/// says it was sent and the create succeeds, the remote lost its objects,
/// and everything is sent again (so a create-only credential notices a
/// wiped bucket without reading it). Then, sealed, the `keys/` object of
/// the current recipients and naming key, unless the state says it was sent.
/// Without `probe` (a ship run soon after one that probed), a remote the
/// state knows is taken as known without a request.
pub(super) fn config(
    store: &Store,
    remote: &Remote,
    codec: &Codec,
    recipients: &[String],
    state: &mut State,
    probe: bool,
) -> Result<Found> {
    let header = Header {
        remote_format: layout::REMOTE_FORMAT,
        store_id: store.config().store_id.clone(),
        sealed: codec.sealed(),
        store: (!codec.sealed()).then(|| store.config().clone()),
    };
    let bytes = serde_json::to_vec_pretty(&header).expect("header encodes");
    if !probe && state.has("c") {
        return keys(store, remote, codec, recipients, state).map(|_| Found::Known);
    }
    let created = match remote.put_new(layout::CONFIG, bytes.clone()) {
        // Azure refuses a create-only SAS the create of a blob that exists.
        Err(Error::Denied { .. }) if state.has("c") => false,
        other => other?,
    };
    let found = match (created, state.has("c")) {
        // A service that ignores the precondition "creates" every time: a
        // second create tells (refused: the first one really created it).
        (true, true) if remote.put_new(layout::CONFIG, bytes)? => Found::Known,
        (true, true) => Found::Lost,
        (true, false) => Found::New,
        (false, true) => Found::Known,
        (false, false) => Found::Unknown,
    };
    match found {
        Found::Unknown => check_existing(store, remote, codec)?,
        Found::Lost => state.forget(|line| line == "c")?,
        _ => {}
    }
    state.note(["c".to_string()])?;
    keys(store, remote, codec, recipients, state)?;
    Ok(found)
}

/// Creates (sealed) the `keys/` object of the current recipients and naming
/// key, unless the state says it was sent; the naming key is saved first.
fn keys(
    store: &Store,
    remote: &Remote,
    codec: &Codec,
    recipients: &[String],
    state: &mut State,
) -> Result<()> {
    state.save_key()?;
    if codec.sealed() {
        let mut sorted = recipients.to_vec();
        sorted.sort();
        let key = layout::keys_key(&sorted, &state.naming);
        let line = format!("k {key}");
        if !state.has(&line) {
            let keys = Keys {
                store: store.config().clone(),
                naming_key: hex::encode(state.naming),
                recipients: sorted,
            };
            let plain = serde_json::to_vec(&keys).expect("keys encode");
            remote.put_new(&key, codec.seal(&plain)?)?;
            state.note([line])?;
        }
    }
    Ok(())
}

/// A `config` already on the remote must be this store's, sealed as we
/// seal. A create-only credential cannot read it: then nothing is checked.
fn check_existing(store: &Store, remote: &Remote, codec: &Codec) -> Result<()> {
    let bytes = match remote.read(layout::CONFIG) {
        Ok(b) => b,
        Err(Error::Denied { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    let theirs = layout::parse_config(&bytes)
        .ok_or_else(|| Error::corrupt(format!("config on {}", remote.url), "not a snap remote"))?;
    if theirs.store_id != store.config().store_id {
        return Err(Error::Invalid(format!(
            "{} holds another store ({}); mirror each store to its own prefix",
            remote.url, theirs.store_id
        )));
    }
    if theirs.sealed != codec.sealed() {
        return Err(Error::Invalid(format!(
            "{} holds a {} copy of this store; mirror the {} copy to a new prefix",
            remote.url,
            if theirs.sealed { "sealed" } else { "plaintext" },
            if codec.sealed() {
                "sealed"
            } else {
                "plaintext"
            },
        )));
    }
    Ok(())
}

/// Lists the remote and makes the state say exactly which objects are
/// there (needs list permission): lost ones (`config`, `keys/`, packs,
/// records) are sent again.
pub(super) fn rescan(
    store: &Store,
    remote: &Remote,
    codec: &Codec,
    state: &mut State,
) -> Result<()> {
    let names: std::collections::HashSet<[u8; 32]> = remote
        .list(layout::PACKS)?
        .into_iter()
        .chain(remote.list(layout::SNAPSHOTS)?)
        .filter_map(|(k, _)| layout::name_of(&k))
        .collect();
    let keys: std::collections::HashSet<String> = remote
        .list(layout::KEYS)?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let config = remote.size(layout::CONFIG)?.is_some();
    let there = |line: &str| {
        if line == "c" {
            return config;
        }
        // The next run writes a full hold (the chain may be what is lost).
        if line.starts_with("H ") {
            return false;
        }
        if let Some(key) = line.strip_prefix("k ") {
            return keys.contains(key);
        }
        // A bundled pack is there when its bundle is.
        let object = line
            .get(2..)
            .map(|rest| rest.split(' ').nth(1).unwrap_or(rest));
        let id = object.and_then(|h| {
            let mut b = [0u8; 32];
            hex::decode_to_slice(h, &mut b).ok().map(|_| b)
        });
        match (line.as_bytes().first(), id) {
            (Some(b'p' | b'r'), Some(id)) => names.contains(&codec.name(&id)),
            _ => true,
        }
    };
    state.forget(there)?;
    // What is there but not in the state (sent by a run killed before it
    // noted it, or by an older snap) is noted now.
    let mut found = Vec::new();
    for (id, _) in store.pack_sizes()? {
        if names.contains(&codec.name(&id.0)) {
            found.push(format!("p {}", id.to_hex()));
        }
    }
    for id in store.snapshot_ids()? {
        if names.contains(&codec.name(&id.0)) {
            found.push(format!("r {}", id.to_hex()));
        }
    }
    state.note(found)
}

/// A full hold is written at least this often (ns); the ones between
/// name only what their run sends, adding to the previous.
const FULL_HOLD_EVERY: u128 = 3600 * 1_000_000_000;

/// Creates a hold before any pack (see `gc_remote`): every pack this store
/// holds, by its name on the remote (a pack sent, or about to be sent,
/// inside a bundle: the bundle's). Within an hour of a full hold, and while
/// the store let no pack go, a run that sends objects writes only their
/// names, adding to the previous hold (so a ship every few seconds does not
/// send the whole list), and a run that sends none writes none: every pack
/// the store holds was named by a hold of the chain before it was sent.
pub(super) fn hold(
    remote: &Remote,
    codec: &Codec,
    state: &mut State,
    plan: &super::packs::PackPlan,
) -> Result<()> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let held = &plan.held;
    let planned: HashSet<PackId> = plan.planned().collect();
    // The packs held at the last hold, less those let go since.
    let kept = super::state::packs_digest(held.iter().filter(|id| !planned.contains(id)));
    let digest = super::state::packs_digest(held.iter());
    let name = |id: &PackId| hex::encode(codec.name(&id.0));
    let adds: Vec<String> = plan.objects().map(|id| name(&id)).collect();
    let (hold, full_at) = match state.last_hold() {
        Some((_, _, d)) if adds.is_empty() && d == kept => return Ok(()),
        Some((base, full_at, d))
            if nanos.saturating_sub(full_at) < FULL_HOLD_EVERY && d == kept =>
        {
            (layout::Hold::Since { base, names: adds }, full_at)
        }
        _ => {
            let object = |id: &PackId| {
                state
                    .bundle_of(id)
                    .or_else(|| plan.bundle_of(id))
                    .unwrap_or(*id)
            };
            let all: std::collections::BTreeSet<String> =
                held.iter().map(|id| name(&object(id))).collect();
            (layout::Hold::Full(all.into_iter().collect()), nanos)
        }
    };
    let plain = serde_json::to_vec(&hold).expect("hold encodes");
    let key = layout::hold_key(nanos, &super::crypt::random_key(), &state.writer()?);
    remote.put_new(&key, codec.seal(&plain)?)?;
    state.set_hold(&key, full_at, &digest)
}

/// Records per batch object.
const BATCH: usize = 5000;

/// Sends every record in `ids` the state does not list, but those that need
/// a pack in `failed` (named in `report.held_back`): a record sent once is
/// never sent again, even when the remote's retention has forgotten it since.
#[allow(clippy::too_many_arguments)]
pub(super) fn records(
    store: &Store,
    reader: Option<&StoreReader>,
    ids: Vec<SnapshotId>,
    remote: &Remote,
    codec: &Codec,
    state: &mut State,
    failed: &HashSet<PackId>,
    report: &mut MirrorReport,
) -> Result<()> {
    let mut todo: Vec<(SnapshotId, Vec<u8>)> = Vec::new();
    for id in ids {
        if state.has(&format!("r {}", id.to_hex())) {
            continue;
        }
        let bytes = store.record_bytes(&id)?;
        if SnapshotId::of(&bytes) != id || std::str::from_utf8(&bytes).is_err() {
            report
                .problems
                .push(format!("record {id}: a corrupt record, not uploaded"));
            continue;
        }
        if let Some(reader) = reader {
            let needs =
                crate::Snapshot::decode(&bytes).map_or(true, |s| needs_any(reader, &s, failed));
            if needs {
                report.held_back.push(format!(
                    "snapshot {id}: it needs a pack that was not sent (see the problems)"
                ));
                continue;
            }
        }
        todo.push((id, bytes));
    }
    // Several records go in one batch (in runs of BATCH), so a mirror that
    // carries many points creates one object for their records.
    for run in todo.chunks(BATCH) {
        let (plain, key) = match run {
            [(id, bytes)] => (
                bytes.clone(),
                record_key(&codec.name(&id.0), codec.sealed()),
            ),
            _ => {
                let texts: Vec<&[u8]> = run.iter().map(|(_, b)| b.as_slice()).collect();
                let plain = layout::encode_batch(&texts);
                let name = codec.name(&SnapshotId::of(&plain).0);
                (plain, layout::batch_key(&name, codec.sealed()))
            }
        };
        let sealed = codec.seal(&plain)?;
        let n = sealed.len() as u64;
        if remote.put_new(&key, sealed)? {
            report.records_uploaded += run.len() as u64;
            report.bytes_uploaded += n;
        }
        // Noted run by run: what was created before a failure stays noted,
        // and queued for the next catalog (`catalog::write`).
        state
            .note(run.iter().flat_map(|(id, _)| {
                [format!("r {}", id.to_hex()), format!("q {}", id.to_hex())]
            }))?;
    }
    Ok(())
}

/// Whether snapshot `s` needs one of the packs in `bad`: a chunk in one, or
/// a delta whose chain of bases reaches one. What cannot be read counts as
/// needed.
fn needs_any(reader: &StoreReader, s: &crate::Snapshot, bad: &HashSet<PackId>) -> bool {
    let Ok(live) = reader.reachable(std::iter::once(s)) else {
        return true;
    };
    live.iter().any(|c| {
        let Ok(loc) = reader.index.locate(c) else {
            return true;
        };
        if bad.contains(&loc.pack) {
            return true;
        }
        loc.entry.kind.is_delta()
            && read_chain(&reader.index, &reader.packs, &loc).map_or(true, |chain| {
                chain.iter().any(|(l, _)| bad.contains(&l.pack))
            })
    })
}
