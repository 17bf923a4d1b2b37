//! The fallback of a local store: a remote's packs, opened on first use.

use super::source::{Ids, RemotePacks};
use super::Remote;
use crate::error::{Error, Result};
use crate::id::PackId;
use crate::store::PackSource;
use std::sync::Arc;

/// A remote's packs opened on first use, named by local ids: the fallback
/// of a local store (no network unless a local pack is missing or damaged).
pub struct Fallback {
    url: String,
    identities: Vec<age::x25519::Identity>,
    /// The naming key the store wrote its packs under there.
    naming: Option<[u8; 32]>,
    /// Packs sent inside bundles, and where.
    bundled: std::collections::HashMap<PackId, (PackId, crate::format::bundle::Member)>,
    cell: std::sync::OnceLock<Result<RemotePacks>>,
}

impl Fallback {
    /// The remote at `url`, opened with `identities` when first needed.
    pub fn new(
        url: &str,
        identities: Vec<age::x25519::Identity>,
        naming: Option<[u8; 32]>,
    ) -> Fallback {
        Fallback {
            url: url.to_string(),
            identities,
            naming,
            bundled: Default::default(),
            cell: Default::default(),
        }
    }

    /// The fallback of `store` to the remote at `url`: named as the store
    /// named its packs there, and reading a pack sent inside a bundle from
    /// its range of the bundle.
    pub fn of_store(
        store: &crate::store::Store,
        url: &str,
        identities: Vec<age::x25519::Identity>,
    ) -> Fallback {
        let mut f = Fallback::new(url, identities, super::state::naming_key(store, url));
        f.bundled = super::state::bundled(store, url);
        f
    }

    fn packs(&self) -> Result<&RemotePacks> {
        let opened = self.cell.get_or_init(|| {
            let remote = Arc::new(Remote::open(&self.url)?);
            let opened = super::pull::open(&remote, &self.identities)?;
            let codec = match self.naming {
                Some(k) => opened.codec.named_with(k),
                None => opened.codec,
            };
            Ok(RemotePacks::new(remote, codec, Ids::Local).with_bundled(self.bundled.clone()))
        });
        opened.as_ref().map_err(Error::duplicate)
    }
}

impl PackSource for Fallback {
    fn describe(&self) -> String {
        self.url.clone()
    }

    fn read_range(&self, id: &PackId, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.packs()?.read_range(id, offset, len)
    }

    fn read_pack(&self, id: &PackId) -> Result<Vec<u8>> {
        self.packs()?.read_pack(id)
    }
}
