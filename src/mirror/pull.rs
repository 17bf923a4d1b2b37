//! Reading a remote back: opening it (its config, and with an identity its
//! keys), its snapshot records, a *view* (a local store with an index built
//! from the remote's pack headers, reading chunks from the remote by ranged
//! reads), and a full clone.

use super::crypt::{self, Codec};
use super::layout::{self, pack_key, Keys};
use super::records::{list_records, records_listed, remote_records};
use super::source::{Ids, RemotePacks};
use super::Remote;
use crate::error::{Error, Result};
use crate::format::pack;
use crate::id::{PackId, SnapshotId};
use crate::store::PackInfo;
use crate::store::{Access, PackSource, Staging, Store, StoreConfig};
use crate::Snapshot;
use age::x25519::Identity;
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Bytes read from the end of a pack to find its header in one read.
const TAIL: u64 = 64 << 10;

/// A remote, opened: the store it holds and how its objects are encoded.
#[derive(Clone, Debug)]
pub struct Opened {
    /// The config of the store it is a copy of.
    pub store: StoreConfig,
    /// How its objects are sealed and named.
    pub codec: Codec,
    /// Whom new objects are sealed to (sealed remotes).
    pub recipients: Vec<String>,
}

/// Opens a remote: reads `config` and, when sealed, the first `keys/`
/// object one of `identities` opens.
pub fn open(remote: &Remote, identities: &[Identity]) -> Result<Opened> {
    let bytes = remote.read(layout::CONFIG).map_err(|e| match e {
        Error::Remote { ref message, .. }
            if message.contains("NotFound") || message.contains("not found") =>
        {
            Error::NotFound(format!("{} holds no snap store", remote.url))
        }
        other => other,
    })?;
    let header = layout::parse_config(&bytes)
        .ok_or_else(|| Error::corrupt(format!("config on {}", remote.url), "not a snap remote"))?;
    if !header.sealed {
        let store = header.store.ok_or_else(|| {
            Error::corrupt(format!("config on {}", remote.url), "no store config")
        })?;
        return Ok(Opened {
            store,
            codec: Codec::Plain,
            recipients: Vec::new(),
        });
    }
    // Every `keys/` object the identities open: the first gives the store
    // and recipients, and each adds its naming key (a store that mirrored
    // here again under a new naming key wrote a second one).
    let mut last = Error::Key(format!(
        "{} is encrypted and holds no keys object",
        remote.url
    ));
    let mut found: Option<(Keys, Vec<[u8; 32]>)> = None;
    for (key, _) in remote.list(layout::KEYS)? {
        let opened = remote.read(&key).and_then(|b| {
            Codec::Age {
                recipients: vec![],
                identities: identities.to_vec(),
                naming: [0; 32],
                others: vec![],
            }
            .open(&key, &b)
        });
        let plain = match opened {
            Ok(plain) => plain,
            Err(e @ Error::Key(_)) => {
                last = e;
                continue;
            }
            Err(e) => return Err(e),
        };
        let keys: Keys = serde_json::from_slice(&plain)
            .map_err(|e| Error::corrupt(format!("remote object {key}"), e.to_string()))?;
        let mut naming = [0u8; 32];
        hex::decode_to_slice(&keys.naming_key, &mut naming)
            .map_err(|_| Error::corrupt(format!("remote object {key}"), "bad naming key"))?;
        match &mut found {
            None => found = Some((keys, vec![naming])),
            Some((_, namings)) if !namings.contains(&naming) => namings.push(naming),
            Some(_) => {}
        }
    }
    let Some((keys, namings)) = found else {
        return Err(last);
    };
    let recipients = crypt::parse_recipients(&keys.recipients.join("\n"), "keys/")?;
    Ok(Opened {
        store: keys.store,
        codec: Codec::Age {
            recipients,
            identities: identities.to_vec(),
            naming: namings[0],
            others: namings[1..].to_vec(),
        },
        recipients: keys.recipients,
    })
}

/// Remote packs by name with their (stored) sizes.
pub(crate) fn remote_packs(remote: &Remote) -> Result<HashMap<PackId, u64>> {
    Ok(remote
        .list(layout::PACKS)?
        .into_iter()
        .filter(|(k, _)| k.ends_with(".pack"))
        .filter_map(|(k, size)| Some((PackId(layout::name_of(&k)?), size)))
        .collect())
}

/// Every snapshot record on the remote, oldest first, each checked against its name.
pub fn remote_snapshots(remote: &Remote, opened: &Opened) -> Result<Vec<(SnapshotId, Snapshot)>> {
    Ok(remote_records(remote, &opened.codec, None)?
        .into_iter()
        .map(|(id, s, _)| (id, s))
        .collect())
}

/// A local store in `dir` that stands for the remote: the remote's config and
/// records, an index built from the remote's pack headers (packs are named
/// by their names on the remote), and no packs: chunks are read from the
/// remote with ranged reads, so a restore fetches only what it needs.
/// Returns the store and each pack's entries.
///
/// With `local` (the store that mirrors to this remote), pack headers and
/// records fetched once are kept in `local/remote-cache/` (immutable, and
/// checked against their names), and a pack `local` holds is read there.
pub fn view(
    remote: Arc<Remote>,
    opened: &Opened,
    dir: &Path,
    local: Option<&Store>,
) -> Result<(Store, Vec<PackInfo>)> {
    let codec = &opened.codec;
    let store = Store::init(dir, opened.store.clone())?;
    let cache = local.map(|l| {
        let tag = &blake3::hash(remote.url.as_bytes()).to_hex()[..16];
        (l, Path::new("remote-cache").join(tag))
    });
    // Records first: every pack a listed record needs is then listed too,
    // whatever a mirror (of this host or another) creates meanwhile.
    let listed = list_records(&remote)?;
    let sizes = remote_packs(&remote)?;
    let mut source =
        RemotePacks::new(remote.clone(), codec.clone(), Ids::Names).with_sizes(sizes.clone());
    if let Some(l) = local {
        source = source.with_local_store(l.clone());
        for (id, _) in l.pack_sizes()? {
            for name in codec.names(&id.0) {
                source = source.with_local_copy(PackId(name), id);
            }
        }
    }
    let repo = store.repository(Access::Write, "view", std::time::Duration::ZERO)?;
    let mut contents = Vec::new();
    let headers = cache.as_ref().map(|(l, c)| (*l, c.join("headers")));
    // Headers are fetched in parallel, each a request or two: waiting on
    // the network, not the cores, so more of them than cores.
    let names: Vec<&PackId> = sizes.keys().collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(super::remote::TRANSFERS * 2)
        .build()
        .map_err(|e| Error::Internal(format!("a thread pool: {e}")))?;
    let tails = pool.install(|| {
        names
            .par_iter()
            .map(|name| {
                let cached = headers
                    .as_ref()
                    .and_then(|(l, h)| l.read_file(h.join(name.to_hex())).ok().flatten());
                match cached {
                    Some(t) => Ok(t),
                    None => {
                        let t = header_tail(&source, name)?;
                        if let Some((l, h)) = &headers {
                            l.write_file(h.join(name.to_hex()), &t, Staging::Beside)?;
                        }
                        Ok(t)
                    }
                }
            })
            .collect::<Result<Vec<_>>>()
    })?;
    for (name, tail) in names.into_iter().zip(tails) {
        let (size, entries) = decode_tail(name, &tail)?;
        repo.note_pack(name, size, &entries)?;
        contents.push(PackInfo {
            id: *name,
            size,
            entries,
        });
    }
    let records = cache.as_ref().map(|(l, c)| (*l, c.join("records")));
    let records = records.as_ref().map(|(l, d)| (*l, d.as_path()));
    for (id, snap, bytes) in records_listed(&remote, codec, records, listed)? {
        repo.put_record(&id, &bytes, snap.time.timestamp())?;
    }
    drop(repo);
    Ok((store.with_view_source(Arc::new(source)), contents))
}

/// Header + trailer of a pack, followed by its plain size (8 bytes LE).
fn header_tail(source: &RemotePacks, name: &PackId) -> Result<Vec<u8>> {
    let (size, tail) = source.tail(name, TAIL)?;
    let corrupt = |d: &str| Error::corrupt(format!("remote pack {}", pack_key(name)), d);
    if size < pack::TRAILER_LEN as u64 {
        return Err(corrupt("shorter than its trailer"));
    }
    let (header_len, _) = pack::decode_trailer(&tail[tail.len() - pack::TRAILER_LEN..], size)
        .map_err(|e| corrupt(&e.to_string()))?;
    let need = header_len as u64 + pack::TRAILER_LEN as u64;
    let mut out = if need <= tail.len() as u64 {
        tail[tail.len() - need as usize..].to_vec()
    } else {
        source.read_range(name, size - need, need)?
    };
    out.extend(size.to_le_bytes());
    Ok(out)
}

/// Decodes what `header_tail` returned: the pack's plain size and entries.
fn decode_tail(name: &PackId, tail: &[u8]) -> Result<(u64, Vec<pack::PackEntry>)> {
    let corrupt = |d: String| Error::corrupt(format!("remote pack {}", pack_key(name)), d);
    let Some(split) = tail
        .len()
        .checked_sub(8)
        .filter(|n| *n >= pack::TRAILER_LEN)
    else {
        return Err(corrupt("cached header too short".into()));
    };
    let size = u64::from_le_bytes(tail[split..].try_into().expect("8 bytes"));
    let tail = &tail[..split];
    let (header_len, sum) = pack::decode_trailer(&tail[tail.len() - pack::TRAILER_LEN..], size)
        .map_err(|e| corrupt(e.to_string()))?;
    if header_len as usize + pack::TRAILER_LEN != tail.len() {
        return Err(corrupt("cached header has the wrong length".into()));
    }
    let data_len = size - tail.len() as u64;
    let entries = pack::decode_header(&tail[..header_len as usize], &sum, data_len)
        .map_err(|e| corrupt(e.to_string()))?;
    Ok((size, entries))
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
/// (each opened and checked against its name) and records downloaded,
/// index rebuilt.
pub fn clone(
    remote: &Remote,
    opened: &Opened,
    dest: &Path,
    progress: &crate::progress::Reporter,
) -> Result<CloneReport> {
    let start = Instant::now();
    let codec = &opened.codec;
    let store = clone_target(dest, &opened.store)?;
    let _lock = store.lock("clone", std::time::Duration::ZERO)?;
    // A killed clone is resumed: packs already here arrived whole (written
    // atomically, each checked against its name first).
    let here: std::collections::HashSet<[u8; 32]> = store
        .pack_sizes()?
        .iter()
        .flat_map(|(id, _)| codec.names(&id.0))
        .collect();
    // Records first: every pack a listed record needs is listed after.
    let listed = list_records(remote)?;
    let mut packs = remote_packs(remote)?;
    packs.retain(|name, _| !here.contains(&name.0));
    progress.start("clone", Some(packs.values().sum()));
    let items = packs.keys().map(pack_key).collect();
    let place = |key: &str, stored: &[u8]| {
        let plain = codec.open(key, stored)?;
        let id = PackId::of(&plain);
        if !layout::name_of(key).is_some_and(|n| codec.is_name(&id.0, &n)) {
            return Err(Error::corrupt(
                format!("remote pack {key}"),
                "does not match its name",
            ));
        }
        pack::decode_pack(&plain)?;
        store.put_pack(&plain).map(drop)
    };
    let mut report = CloneReport {
        store: dest.display().to_string(),
        ..Default::default()
    };
    for (_, r) in remote.download(items, &place, progress) {
        report.bytes += r?;
        report.packs += 1;
    }
    progress.finish();
    let mut sent = vec!["c".to_string()];
    for (id, _, bytes) in records_listed(remote, codec, None, listed)? {
        store.put_record(&id, &bytes)?;
        report.snapshots += 1;
        report.bytes += bytes.len() as u64;
        sent.push(format!("r {}", id.to_hex()));
    }
    crate::store::packs::rebuild_index(&store)?;
    // A host rebuilt from its remote carries on there as itself.
    sent.extend(
        store
            .pack_sizes()?
            .iter()
            .map(|(id, _)| format!("p {}", id.to_hex())),
    );
    let naming = match codec {
        Codec::Age { naming, .. } => *naming,
        Codec::Plain => crypt::random_key(),
    };
    super::state::adopt(&store, &remote.url, naming, &opened.recipients, sent)?;
    report.duration_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

/// The store a clone goes into: a new one, or the same store a killed
/// clone left.
fn clone_target(dest: &Path, config: &StoreConfig) -> Result<Store> {
    match Store::open(dest) {
        Ok(s) if s.config().store_id == config.store_id => Ok(s),
        Ok(s) => Err(Error::Invalid(format!(
            "{} holds another store ({}); clone into an empty or missing directory",
            dest.display(),
            s.config().store_id
        ))),
        Err(_) => Store::init(dest, config.clone()).map_err(|e| match e {
            Error::Invalid(m) => Error::Invalid(format!(
                "{m} (an interrupted clone of this remote is resumed in place; anything else needs an empty directory)"
            )),
            other => other,
        }),
    }
}
