//! The remote's key scheme, in one place.
//!
//! ```text
//! config                      plain JSON: remote format, store id, sealed or not
//!                             (a format-1 remote: the store's config itself)
//! keys/<16 hex>               sealed: the store config, naming key and
//!                             recipients, one object per recipient set and
//!                             naming key
//! packs/<2 hex>/<64 hex>.pack a pack; sealed: named by the keyed hash of its id
//! snapshots/<64 hex>.json     a snapshot record (plain remotes)
//! snapshots/<64 hex>          a sealed record, named by the keyed hash of its id
//! batches/<64 hex>[.json]     several records in one object (a JSON array of
//!                             each record's text), named like a record by the
//!                             (keyed) hash of its plain bytes
//! holds/<20 digits>-<8 hex>-<16 hex writer>
//!                             sealed: the packs a mirroring store still holds
//!                             (a JSON list of names), or those it added since
//!                             the hold `base` ({"base": KEY, "names": [...]});
//!                             one chain per writer (a store's state of this
//!                             remote), so stores sharing a prefix keep each
//!                             other's packs
//! catalogs/<20 digits>-<8 hex> sealed: what this store's records are (one
//!                             entry per record a run created, and the host's
//!                             summary), so the fleet's operator reads a few
//!                             small objects, not every record (`catalog`)
//! ```
//!
//! A fleet bucket holds one such remote per store, under `hosts/<store id>/`
//! (`fleet`).

use crate::id::PackId;
use crate::store::StoreConfig;
use serde::{Deserialize, Serialize};

pub(crate) const CONFIG: &str = "config";
pub(crate) const KEYS: &str = "keys/";
pub(crate) const PACKS: &str = "packs/";
pub(crate) const SNAPSHOTS: &str = "snapshots/";
pub(crate) const HOLDS: &str = "holds/";
pub(crate) const BATCHES: &str = "batches/";
/// Where catalogs are (`catalog`).
pub(crate) const CATALOGS: &str = "catalogs/";

/// The remote format this snap writes.
pub(crate) const REMOTE_FORMAT: u32 = 2;

/// The plain `config` object of a format-2 remote.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Header {
    pub remote_format: u32,
    pub store_id: String,
    pub sealed: bool,
    /// The store's config (plain remotes only; sealed ones keep it in `keys/`).
    #[serde(default)]
    pub store: Option<StoreConfig>,
}

/// The sealed contents of a `keys/` object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Keys {
    pub store: StoreConfig,
    /// Hex of the naming key.
    pub naming_key: String,
    /// Whom new objects are sealed to (`age1…`).
    pub recipients: Vec<String>,
}

/// Parses a `config` object: a format-2 header or a format-1 store config.
pub(crate) fn parse_config(bytes: &[u8]) -> Option<Header> {
    if let Ok(h) = serde_json::from_slice::<Header>(bytes) {
        return Some(h);
    }
    let store: StoreConfig = serde_json::from_slice(bytes).ok()?;
    Some(Header {
        remote_format: 1,
        store_id: store.store_id.clone(),
        sealed: false,
        store: Some(store),
    })
}

/// The key of the pack whose name on the remote is `name`.
pub fn pack_key(name: &PackId) -> String {
    let hex = name.to_hex();
    format!("{PACKS}{}/{hex}.pack", &hex[..2])
}

/// The key of a record whose name on the remote is `name`.
pub(crate) fn record_key(name: &[u8; 32], sealed: bool) -> String {
    let hex = hex::encode(name);
    if sealed {
        format!("{SNAPSHOTS}{hex}")
    } else {
        format!("{SNAPSHOTS}{hex}.json")
    }
}

/// The key of a batch of records whose name on the remote is `name`.
pub(crate) fn batch_key(name: &[u8; 32], sealed: bool) -> String {
    let hex = hex::encode(name);
    if sealed {
        format!("{BATCHES}{hex}")
    } else {
        format!("{BATCHES}{hex}.json")
    }
}

/// A batch's plain bytes: each record's text, in order.
pub(crate) fn encode_batch(records: &[&[u8]]) -> Vec<u8> {
    let texts: Vec<&str> = records
        .iter()
        .map(|r| std::str::from_utf8(r).expect("records are JSON text"))
        .collect();
    serde_json::to_vec(&texts).expect("a batch encodes")
}

/// The records of a batch's plain bytes; `None` when it is not a batch.
pub(crate) fn decode_batch(plain: &[u8]) -> Option<Vec<Vec<u8>>> {
    let texts: Vec<String> = serde_json::from_slice(plain).ok()?;
    Some(texts.into_iter().map(String::into_bytes).collect())
}

/// The `keys/` object for a set of recipients (sorted) and a naming key:
/// a store that mirrors to one remote under a second naming key (its local
/// state was lost, or the remote is a copy of another) writes a second
/// `keys/` object, and readers use every naming key they find.
pub(crate) fn keys_key(recipients: &[String], naming: &[u8; 32]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(recipients.join("\n").as_bytes());
    h.update(b"\n");
    h.update(blake3::hash(naming).as_bytes());
    format!("{KEYS}{}", &h.finalize().to_hex()[..16])
}

/// A new hold's key: its time first, so keys sort by age.
pub(crate) fn hold_key(nanos: u128, salt: &[u8; 32], writer: &str) -> String {
    format!("{HOLDS}{nanos:020}-{}-{writer}", &hex::encode(salt)[..8])
}

/// The writer a hold key belongs to: the 16 hex after its salt, or "" for
/// a hold written before holds named their writer (one chain, as then).
pub(crate) fn hold_writer(key: &str) -> &str {
    let name = key.strip_prefix(HOLDS).unwrap_or(key);
    name.splitn(3, '-').nth(2).unwrap_or("")
}

/// The key of a catalog written at `nanos` (the writer's clock).
pub(crate) fn catalog_key(nanos: u128, salt: &[u8; 32]) -> String {
    format!("{CATALOGS}{nanos:020}-{}", &hex::encode(salt)[..8])
}

/// A hold's contents: every name, or the names added since hold `base`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Hold {
    Full(Vec<String>),
    Since { base: String, names: Vec<String> },
}

/// The name in a listed key (`packs/ab/<hex>.pack`, `snapshots/<hex>[.json]`).
pub(crate) fn name_of(key: &str) -> Option<[u8; 32]> {
    let last = key.rsplit('/').next()?;
    let hex = last
        .strip_suffix(".pack")
        .or_else(|| last.strip_suffix(".json"))
        .unwrap_or(last);
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out).ok()?;
    Some(out)
}
