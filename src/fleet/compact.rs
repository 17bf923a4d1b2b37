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

/// Every entry of a host's catalogs (each record once, the newest entry
/// wins), skipping catalogs another replaces; with the newest catalog.
pub fn entries(
    host: &Remote,
    identities: &[Identity],
    store_id: &str,
) -> Result<(Vec<String>, Vec<Entry>, Option<Catalog>)> {
    let codec = opener(identities);
    let mut keys = host.list(crate::mirror::layout::CATALOGS)?;
    keys.sort();
    let reads = host.read_ranges(keys.iter().map(|(k, s)| (k.clone(), 0, *s)).collect());
    let mut catalogs = Vec::new();
    for ((key, _), read) in keys.iter().zip(reads) {
        catalogs.push((key.clone(), decode(&codec, store_id, key, &read?)?));
    }
    let replaced: HashSet<String> = catalogs
        .iter()
        .flat_map(|(_, c)| c.replaces.iter().cloned())
        .collect();
    let mut by_id: BTreeMap<String, Entry> = BTreeMap::new();
    for (key, c) in &catalogs {
        if !replaced.contains(key) {
            by_id.extend(c.entries.iter().map(|e| (e.id.clone(), e.clone())));
        }
    }
    let mut entries: Vec<Entry> = by_id.into_values().collect();
    entries.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
    let newest = catalogs.last().map(|(_, c)| c.clone());
    Ok((keys.into_iter().map(|(k, _)| k).collect(), entries, newest))
}

/// Merges the catalogs of `host` (a store's remote, in a fleet or alone)
/// into one, sealed as the store seals; entries of records in `forgotten`
/// (by remote gc) are dropped. Needs read, create
/// and delete permission, and the identity.
pub fn compact(
    host: &Remote,
    identities: &[Identity],
    forgotten: &HashSet<String>,
) -> Result<CompactReport> {
    let opened = crate::mirror::open_remote(host, identities)?;
    let store_id = opened.store.store_id.clone();
    let (keys, mut entries, newest) = entries(host, identities, &store_id)?;
    let mut report = CompactReport {
        store_id: store_id.to_string(),
        ..Default::default()
    };
    let before = entries.len();
    entries.retain(|e| !forgotten.contains(&e.id));
    let Some(newest) = newest.filter(|_| keys.len() > 1 || entries.len() < before) else {
        return Ok(report);
    };
    report.dropped = before - entries.len();
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
