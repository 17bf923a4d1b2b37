//! fleet: the operator's side of a bucket that many stores mirror into.
//!
//! ```text
//! BUCKET/hosts/<store id>/   one store's remote (config, keys/, packs/,
//!                            snapshots/, batches/, holds/, catalogs/)
//! ```
//!
//! Hosts never read, list or lock anything: each mirrors with its own
//! create-only credential into the prefix of its store id (random, made at
//! `init`, kept by `clone`), so two stores never share one, and two hosts
//! with one hostname are two prefixes. The operator learns every host's
//! state from the newest catalog of each (`mirror::catalog`): one listing
//! of `hosts/`, then a listing of the host's `catalogs/` and one read, so
//! `status` costs O(hosts), whatever their history. Catalogs are compacted
//! by the operator (`compact`), so that listing stays one request.

mod compact;
mod prune;
mod status;
mod textfile;

pub use compact::{compact, entries, CompactReport, Pruned};
pub use prune::prune;
pub use status::{status, FleetOptions, FleetStatus, HostReport, PathReport};
pub use textfile::textfile;

use crate::error::{Error, Result};
use crate::mirror::catalog::Catalog;
use crate::mirror::crypt::Codec;
use crate::mirror::Remote;
use age::x25519::Identity;

/// Where the store `store_id` mirrors in the fleet bucket at `root_url`.
pub fn host_url(root_url: &str, store_id: &str) -> String {
    format!("{}/hosts/{store_id}", root_url.trim_end_matches('/'))
}

/// The store ids that have a prefix in the fleet bucket (one request per
/// thousand hosts).
pub fn hosts(root: &Remote) -> Result<Vec<String>> {
    let mut ids: Vec<String> = root
        .list_dirs("hosts/")?
        .into_iter()
        .filter_map(|d| {
            let id = d.strip_prefix("hosts/")?.trim_end_matches('/');
            (!id.is_empty() && !id.contains('/')).then(|| id.to_string())
        })
        .collect();
    ids.sort();
    Ok(ids)
}

/// What opens catalogs: the operator's identities (none: a plaintext fleet).
pub(crate) fn opener(identities: &[Identity]) -> Codec {
    match identities.is_empty() {
        true => Codec::Plain,
        false => Codec::Age {
            recipients: Vec::new(),
            identities: identities.to_vec(),
            naming: [0; 32],
            others: Vec::new(),
        },
    }
}

/// Decodes catalog `key` from its stored bytes (sealed, or plain JSON in a
/// plaintext fleet), checked to describe the store whose prefix holds it.
pub(crate) fn decode(codec: &Codec, store_id: &str, key: &str, stored: &[u8]) -> Result<Catalog> {
    let plain = match crate::mirror::crypt::is_sealed(stored) {
        true if !codec.sealed() => {
            return Err(Error::Key(format!(
                "catalog {key} of host {store_id} is sealed: give the fleet's identity (--identity)"
            )))
        }
        true => codec.open(key, stored)?,
        false => stored.to_vec(),
    };
    let c: Catalog = serde_json::from_slice(&plain)
        .map_err(|e| Error::corrupt(format!("catalog {key} of host {store_id}"), e.to_string()))?;
    if c.store_id != store_id {
        return Err(Error::corrupt(
            format!("catalog {key} of host {store_id}"),
            format!("it describes another store ({})", c.store_id),
        ));
    }
    Ok(c)
}

/// The store id of host `name` in the fleet: a store id, a prefix of one
/// (4 hex or more), or a host name that exactly one host's newest catalog
/// carries.
pub fn resolve_host(root: &Remote, identities: &[Identity], name: &str) -> Result<String> {
    // A whole store id costs nothing to resolve (a wrong one is found when
    // its prefix holds no store).
    if name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(name.to_ascii_lowercase());
    }
    let ids = hosts(root)?;
    if ids.iter().any(|id| id == name) {
        return Ok(name.to_string());
    }
    let by_prefix: Vec<&String> = ids.iter().filter(|id| id.starts_with(name)).collect();
    if name.len() >= 4 && by_prefix.len() == 1 {
        return Ok(by_prefix[0].clone());
    }
    let fleet = status(root, identities, &FleetOptions::default())?;
    let named: Vec<&HostReport> = fleet
        .hosts
        .iter()
        .filter(|h| h.host.as_deref() == Some(name))
        .collect();
    match named.as_slice() {
        [one] => Ok(one.store_id.clone()),
        [] => Err(Error::NotFound(format!(
            "no host {name:?} in the fleet at {} ({} hosts)",
            root.url,
            ids.len()
        ))),
        many => Err(Error::Invalid(format!(
            "{} hosts are named {name:?} in the fleet at {}: name one by its store id ({})",
            many.len(),
            root.url,
            many.iter()
                .map(|h| h.store_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
