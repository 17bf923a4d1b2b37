//! mirror: store -> seal -> upload packs -> upload records last, never
//! reading the bucket (a create-only credential suffices; see `state`).
//!
//! The remote's layout is in `layout`. Invariants: a snapshot record is
//! uploaded only after every pack of the store is on the remote, so the
//! remote never names a missing pack; every object is named by its content
//! (or its keyed hash) and created with a does-not-exist precondition, so
//! nothing is ever overwritten; a hold listing every pack the store holds is
//! created before any pack, so remote gc never deletes a pack a future
//! record of this store may name.

pub mod catalog;
pub mod crypt;
pub mod fallback;
pub mod layout;
mod listing;
mod ops;
mod packs;
mod prune;
mod pull;
mod push;
mod records;
mod remote;
mod seal;
mod services;
pub mod ship;
pub mod source;
pub mod state;

pub use layout::pack_key;
pub use ops::Op;
pub use prune::gc_remote;
pub use pull::{clone, open as open_remote, remote_snapshots, view, CloneReport, Opened};
pub use remote::Remote;

use crate::error::{Error, Result};
use crate::id::PackId;
use crate::store::Store;
use crypt::Codec;
use state::State;
use std::sync::Arc;
use std::time::Instant;

/// How `mirror` pushes.
#[derive(Clone, Default)]
pub struct MirrorOptions {
    /// Re-read and re-hash this share (0..=1) of the remote's packs.
    pub verify: f64,
    /// How long to wait for the store.
    pub lock_wait: crate::store::LockWait,
    /// Mirror unencrypted when the store has no recipient.
    pub plaintext: bool,
    /// List the remote (needs list permission) and send again what the
    /// local state says was sent but the remote lacks.
    pub rescan: bool,
    /// What opens sealed packs for `verify` (never needed to push).
    pub identities: Vec<age::x25519::Identity>,
    /// Send small packs together in bundles (one object per pack size):
    /// what shipping points does. A bundle stays on the remote whole while
    /// the store holds any of its packs, so plain mirrors send each alone
    /// and remote gc can free them one by one.
    pub bundle: bool,
    /// Skip the `config` create that notices a wiped bucket (one request):
    /// ship runs probe once every `ship::PROBE`, not every run.
    pub no_probe: bool,
    /// Write a catalog only when the last is at least this old (ship runs:
    /// `ship::CATALOG`; the records wait, queued, for the next); `None`:
    /// every run that sent records writes one.
    pub catalog_every: Option<std::time::Duration>,
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
    /// Small packs sent together inside bundles (each bundle counts once
    /// in `packs_uploaded`).
    pub packs_bundled: u64,
    /// Remote packs re-read (`verify`).
    pub packs_verified: u64,
    /// Wall time.
    pub duration_ms: u64,
    /// Upload rate.
    pub throughput_mib_s: f64,
    /// Everything that went wrong, by object; empty on success.
    pub problems: Vec<String>,
    /// Snapshots not sent because they need a pack that could not be
    /// (damaged here): each with the reason. The others were sent.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held_back: Vec<String>,
    /// What the run noticed and repaired, such as a remote that had lost
    /// its objects and was sent everything again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Checks a local pack's bytes against its id and decodes its header.
pub(crate) fn check_pack(id: &PackId, bytes: &[u8], what: &str) -> Result<()> {
    if PackId::of(bytes) != *id {
        return Err(Error::corrupt(
            format!("{what} {id}"),
            "its bytes do not match its name",
        ));
    }
    crate::format::pack::decode_pack(bytes).map(|_| ())
}

/// A store with no recipient mirrors only when a plaintext copy is allowed.
fn unsealed(plaintext: bool) -> Result<()> {
    match plaintext {
        true => Ok(()),
        false => Err(Error::Refused {
            message: "the store has no recipient to encrypt to, so anyone who can read the bucket could read this copy; generate or add one, or allow a plaintext copy".into(),
            option: "plaintext",
        }),
    }
}

/// The codec new objects for this store are sealed with.
fn push_codec(store: &Store, naming: [u8; 32], plaintext: bool) -> Result<(Codec, Vec<String>)> {
    let recipients = state::recipients(store)?;
    if recipients.is_empty() {
        return unsealed(plaintext).map(|_| (Codec::Plain, recipients));
    }
    let parsed = crypt::parse_recipients(&recipients.join("\n"), "recipients")?;
    let codec = Codec::Age {
        recipients: parsed,
        identities: Vec::new(),
        naming,
        others: Vec::new(),
    };
    Ok((codec, recipients))
}

/// Pushes the store to `remote` without reading it. Idempotent and
/// resumable: a run that was interrupted is completed by the next one.
pub fn mirror(store: &Store, remote: &Arc<Remote>, opts: &MirrorOptions) -> Result<MirrorReport> {
    let start = Instant::now();
    // A reader of the store (a take or a watch goes on meanwhile; local gc
    // waits), and the only writer of this remote's state.
    let lock = state::lock(store, &remote.url, "mirror", opts.lock_wait.0)?;
    let mut report = MirrorReport {
        remote: remote.url.clone(),
        ..Default::default()
    };
    let mut state = State::load(store, &remote.url)?;
    let (codec, recipients) = push_codec(store, state.naming, opts.plaintext)?;
    settle(
        store,
        remote,
        &codec,
        &recipients,
        &mut state,
        opts,
        &mut report,
    )?;
    // Records are listed before packs: every pack a listed record needs is
    // durable by then (take's order), so it is among the packs sent below.
    let records = store.snapshot_ids()?;
    let plan = packs::plan_packs(store, &codec, &state, opts.bundle, &mut report)?;
    push::hold(remote, &codec, &mut state, &plan)?;
    let damaged = packs::send(store, remote, &codec, &mut state, plan, &mut report)?;
    // Records go last: a record is sent only when every pack it needs is
    // on the remote; one that needs a pack damaged here is held back. The
    // index is opened only then, to tell which (`held` keeps the lock,
    // inside the repository or alone, until the run ends).
    let held = match damaged.is_empty() {
        true => Err(lock),
        false => Ok(store.repository_with(lock)?),
    };
    push::records(
        store,
        held.as_ref().ok().map(|r| &**r),
        records,
        remote,
        &codec,
        &mut state,
        &damaged,
        &mut report,
    )?;
    // After the records it names: what the fleet's operator reads.
    catalog::write(
        store,
        remote,
        &codec,
        &mut state,
        &report,
        opts.catalog_every,
    )?;
    if opts.verify > 0.0 {
        verify_sample(
            remote,
            &codec.opening(&opts.identities),
            opts.verify,
            &mut report,
        )?;
    }
    report.duration_ms = start.elapsed().as_millis() as u64;
    report.throughput_mib_s =
        report.bytes_uploaded as f64 / 1048576.0 / start.elapsed().as_secs_f64().max(1e-3);
    Ok(report)
}

/// Creates `config` (see `push::config`) and acts on what that found: a
/// remote that lost its objects is said in the report's warnings; one this
/// store has no record of mirroring to is listed when the credential may
/// (otherwise each object is offered again, one that exists left as it is).
fn settle(
    store: &Store,
    remote: &Remote,
    codec: &Codec,
    recipients: &[String],
    state: &mut State,
    opts: &MirrorOptions,
    report: &mut MirrorReport,
) -> Result<()> {
    let fresh = state.sent.is_empty();
    if opts.rescan {
        push::rescan(store, remote, codec, state)?;
    }
    let found = push::config(store, remote, codec, recipients, state, !opts.no_probe)?;
    store.progress().note(format!(
        "{}: {}",
        remote.url,
        match found {
            push::Found::New => "a new remote",
            push::Found::Known => "known (its config is there, as sent)",
            push::Found::Unknown =>
                "holds this store, but this store has no record of mirroring there",
            push::Found::Lost => "its config was gone: sending everything again",
        }
    ));
    match found {
        push::Found::Lost => report.warnings.push(format!(
            "{} had lost its objects (its config was gone: a wiped or replaced bucket); everything this store holds was sent again",
            remote.url
        )),
        push::Found::Unknown if fresh && !opts.rescan => {
            match push::rescan(store, remote, codec, state) {
                Err(Error::Denied { .. }) => {}
                r => r?,
            }
        }
        _ => {}
    }
    Ok(())
}

/// Re-reads a share of the remote's packs and checks each against its name
/// (needs read and list permission, and the identity when sealed).
fn verify_sample(
    remote: &Arc<Remote>,
    codec: &Codec,
    share: f64,
    report: &mut MirrorReport,
) -> Result<()> {
    let mut names: Vec<PackId> = pull::remote_packs(remote)?.into_keys().collect();
    names.sort();
    // A deterministic spread: every pack whose name falls in the first `share` of the space.
    let limit = (share.clamp(0.0, 1.0) * 65536.0) as u32;
    let source = source::RemotePacks::new(remote.clone(), codec.clone(), source::Ids::Names);
    for name in names
        .into_iter()
        .filter(|id| (u16::from_be_bytes([id.0[0], id.0[1]]) as u32) < limit.max(1))
    {
        report.packs_verified += 1;
        let checked = crate::store::PackSource::read_pack(&source, &name)
            .and_then(|plain| crate::format::pack::decode_pack(&plain).map(|_| ()));
        if let Err(e) = checked {
            report.problems.push(format!("{}: {e}", pack_key(&name)));
        }
    }
    Ok(())
}
