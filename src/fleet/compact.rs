//! Catalog compaction: a host's catalogs merged into one, so that listing
//! and reading them stays one request each after years of mirrors.
//!
//! Order: the merged catalog is created (naming the keys it replaces),
//! then the replaced ones are deleted. A crash between leaves both, read
//! as one (readers skip a catalog that another replaces, and take each
//! record once); the next compaction merges them. Its key sorts right after
//! the newest one it replaces, so a catalog a host creates meanwhile stays
//! the newest, and is left for the next compaction.

use super::{decode, opener};
use crate::error::Result;
use crate::mirror::catalog::{Catalog, Entry};
use crate::mirror::Remote;
use age::x25519::Identity;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// What `compact` did to one host's catalogs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CompactReport {
    /// The host (store id).
    pub store_id: String,
    /// Catalogs merged and deleted.
    pub merged: usize,
    /// Entries in the merged catalog.
    pub entries: usize,
    /// Entries dropped: their record was forgotten.
    pub dropped: usize,
}

/// What remote gc of a host leaves to its catalogs: an entry of a catalog
/// listed before gc listed the records (`listed`) stays only when gc kept
/// its record (`kept`); a catalog listed later is kept whole, since it may
/// name records created after gc's listing (a record precedes its catalog).
#[derive(Clone, Debug, Default)]
pub struct Pruned {
    /// Catalog keys listed before the records.
    pub listed: HashSet<String>,
    /// The ids (hex) of the records gc kept.
    pub kept: HashSet<String>,
}

impl Pruned {
    fn keeps(&self, key: &str, e: &Entry) -> bool {
        !self.listed.contains(key) || self.kept.contains(&e.id)
    }
}

/// Every catalog of a host, by key (sorted), each opened and checked.
fn read(host: &Remote, identities: &[Identity], store_id: &str) -> Result<Vec<(String, Catalog)>> {
    let codec = opener(identities);
    let mut keys = host.list(crate::mirror::layout::CATALOGS)?;
    keys.sort();
    let reads = host.read_ranges(keys.iter().map(|(k, s)| (k.clone(), 0, *s)).collect());
    keys.into_iter()
        .zip(reads)
        .map(|((key, _), read)| {
            let c = decode(&codec, store_id, &key, &read?)?;
            Ok((key, c))
        })
        .collect()
}

/// The entries of `catalogs` (each record once, the newest entry wins),
/// skipping catalogs another replaces and, with `pruned`, entries of
/// records remote gc let go; oldest first.
fn merge(catalogs: &[(String, Catalog)], pruned: Option<&Pruned>) -> Vec<Entry> {
    let replaced: HashSet<&String> = catalogs.iter().flat_map(|(_, c)| &c.replaces).collect();
    let mut by_id: BTreeMap<String, Entry> = BTreeMap::new();
    for (key, c) in catalogs.iter().filter(|(k, _)| !replaced.contains(k)) {
        let kept = c
            .entries
            .iter()
            .filter(|e| pruned.is_none_or(|p| p.keeps(key, e)));
        by_id.extend(kept.map(|e| (e.id.clone(), e.clone())));
    }
    let mut entries: Vec<Entry> = by_id.into_values().collect();
    entries.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
    entries
}

/// Every record a host's catalogs name (see `merge`), oldest first.
pub fn entries(host: &Remote, identities: &[Identity], store_id: &str) -> Result<Vec<Entry>> {
    Ok(merge(&read(host, identities, store_id)?, None))
}

/// Merges the catalogs of `host` (a store's remote, in a fleet or alone)
/// into one, sealed as the store seals; with `pruned` (after remote gc),
/// without the records gc let go. Needs read, create and delete
/// permission, and the identity.
pub fn compact(
    host: &Remote,
    identities: &[Identity],
    pruned: Option<&Pruned>,
) -> Result<CompactReport> {
    let opened = crate::mirror::open_remote(host, identities)?;
    let store_id = opened.store.store_id.clone();
    let catalogs = read(host, identities, &store_id)?;
    let (all, entries) = (merge(&catalogs, None), merge(&catalogs, pruned));
    let mut report = CompactReport {
        store_id: store_id.to_string(),
        ..Default::default()
    };
    let newest = catalogs.last().map(|(_, c)| c.clone());
    let Some(newest) = newest.filter(|_| catalogs.len() > 1 || entries.len() < all.len()) else {
        return Ok(report);
    };
    let keys: Vec<String> = catalogs.into_iter().map(|(k, _)| k).collect();
    report.dropped = all.len() - entries.len();
    report.entries = entries.len();
    let last = keys.last().expect("a newest catalog");
    // `<20 digits>-<8 hex>` of the newest, then `-c` and 8 hex of its own.
    let stem: String = last.splitn(3, '-').take(2).collect::<Vec<_>>().join("-");
    let salt = hex::encode(&crate::mirror::crypt::random_key()[..4]);
    let key = format!("{stem}-c{salt}");
    let merged = Catalog {
        entries,
        replaces: keys.clone(),
        ..newest
    };
    let plain = serde_json::to_vec(&merged).expect("catalog encodes");
    host.put_new(&key, opened.codec.seal(&plain)?)?;
    for k in &keys {
        host.delete(k)?;
    }
    report.merged = keys.len();
    Ok(report)
}
