//! A remote's packs as a `PackSource`: what a view reads everything from,
//! and what a local store falls back to for a pack missing or damaged here.
//!
//! Sealed packs (`seal`) are read by ranges: a read fetches the sealed
//! chunks that cover the bytes asked for in one request and opens them. A
//! pack's wrapped key is at its end: fetched (with the pack's last bytes,
//! which a view reads anyway for the pack's header) and unwrapped once, then
//! kept (for at most `HEADS` packs). Packs sealed in seal format 1 (whole
//! age files) are read whole, and the last `OLD` of them kept.

use super::crypt::Codec;
use super::layout::pack_key;
use super::remote::Remote;
use super::seal::{self, Layout, PayloadKey};
use crate::error::{Error, Result};
use crate::format::bundle::Member;
use crate::id::PackId;
use crate::store::{PackSource, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Bytes of a sealed object's end fetched for its key: its whole trailer,
/// unless it is sealed to very many recipients.
const HEAD: u64 = 4096;
/// Packs whose header and key are kept: a restore reads on in the packs it
/// just read, and memory stays bounded.
const HEADS: usize = 256;
/// Whole packs of seal format 1 kept.
const OLD: usize = 2;

/// How the ids asked for map to names on the remote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ids {
    /// Ids are the remote's names (a view's index was built from them).
    Names,
    /// Ids are local pack ids, named on the remote by the codec.
    Local,
}

/// A remote's packs, read by ranged reads (and opened when sealed).
pub(crate) struct RemotePacks {
    remote: Arc<Remote>,
    codec: Codec,
    ids: Ids,
    /// Sizes of sealed objects by name, as listed (stat when unknown).
    sizes: HashMap<PackId, u64>,
    /// Local copies (same plain bytes) by remote name, with their local
    /// ids: read first, once they hash to their id (`local_copy`).
    local: HashMap<PackId, PackId>,
    /// The store holding the local copies.
    local_store: Option<Store>,
    /// Local copies checked so far, and whether each was intact.
    checked: Mutex<HashMap<PackId, bool>>,
    heads: Mutex<HashMap<PackId, Arc<Head>>>,
    old: Mutex<Vec<(PackId, Arc<Vec<u8>>)>>,
    /// Local packs sent inside bundles (`Ids::Local`): each one's bundle
    /// and its range there.
    bundled: HashMap<PackId, (PackId, Member)>,
}

/// What a sealed pack's header says.
enum Head {
    /// Seal format 2: its payload key and where its chunks lie.
    Sealed { key: PayloadKey, layout: Layout },
    /// Seal format 1 (a whole age file): read whole.
    Age,
}

impl RemotePacks {
    /// The packs of `remote`, encoded by `codec`, asked for by `ids`.
    pub fn new(remote: Arc<Remote>, codec: Codec, ids: Ids) -> RemotePacks {
        RemotePacks {
            remote,
            codec,
            ids,
            sizes: HashMap::new(),
            local: HashMap::new(),
            local_store: None,
            checked: Mutex::new(HashMap::new()),
            heads: Mutex::new(HashMap::new()),
            old: Mutex::new(Vec::new()),
            bundled: HashMap::new(),
        }
    }

    /// Local packs that were sent inside bundles, and where (`Ids::Local`).
    pub(crate) fn with_bundled(
        mut self,
        bundled: HashMap<PackId, (PackId, Member)>,
    ) -> RemotePacks {
        self.bundled = bundled;
        self
    }

    /// Object sizes by name, from a listing.
    pub(crate) fn with_sizes(mut self, sizes: HashMap<PackId, u64>) -> RemotePacks {
        self.sizes = sizes;
        self
    }

    /// Local copies of packs are read in `store` (see `with_local_copy`).
    pub(crate) fn with_local_store(mut self, store: Store) -> RemotePacks {
        self.local_store = Some(store);
        self
    }

    /// Reads pack `name` from the local store's pack `id` (a copy) instead
    /// of the remote, while that copy is intact.
    pub(crate) fn with_local_copy(mut self, name: PackId, id: PackId) -> RemotePacks {
        self.local.insert(name, id);
        self
    }

    /// The local copy of `name`, if there is one and it hashes to its id:
    /// checked once, whole, on first use. A damaged copy is passed over and
    /// the remote read instead, so a reader of the remote never gets the
    /// local damage.
    fn local_copy(&self, name: &PackId) -> Option<(&Store, PackId)> {
        let (store, id) = (self.local_store.as_ref()?, *self.local.get(name)?);
        let known = self.checked.lock().expect("checked").get(name).copied();
        let ok = known.unwrap_or_else(|| {
            let ok = store.local_pack(&id).is_some_and(|b| PackId::of(&b) == id);
            self.checked.lock().expect("checked").insert(*name, ok);
            ok
        });
        ok.then_some((store, id))
    }

    /// The plain size of pack `name` and its last `n` plain bytes (fewer
    /// if it is shorter): one request for a sealed pack, whose key, length
    /// and header are all at its end. The length is what the object's size
    /// says, trusted because the last chunk (marked last) opens.
    pub(crate) fn tail(&self, name: &PackId, n: u64) -> Result<(u64, Vec<u8>)> {
        let key = pack_key(name);
        if !self.codec.sealed() {
            let len = self.size_of(&key, name)?;
            let m = n.min(len);
            return Ok((len, self.remote.read_range(&key, len - m, m)?));
        }
        let size = self.size_of(&key, name)?;
        let want = (n.div_ceil(seal::CHUNK) + 1) * seal::SEALED_CHUNK + HEAD;
        let start = size.saturating_sub(want);
        let bytes = self.fetch(&key, start, size)?;
        let head = match seal::is_sealed(&bytes) {
            true => self.remember(name, self.head_from(&key, size, &bytes)?),
            false => self.remember(name, Head::Age),
        };
        let Head::Sealed { key: pk, layout } = &*head else {
            let plain = self.old_pack(name)?;
            let m = (n as usize).min(plain.len());
            return Ok((plain.len() as u64, plain[plain.len() - m..].to_vec()));
        };
        let len = layout.plain_len();
        let m = n.min(len);
        let (s, e, first) = layout.span(&key, len - m, m)?;
        let span = match s >= start {
            true => bytes[(s - start) as usize..(e - start) as usize].to_vec(),
            false => self.fetch(&key, s, e)?,
        };
        Ok((
            len,
            seal::open_span(pk, layout, &key, first, span, (len - m, m))?,
        ))
    }

    fn name(&self, id: &PackId) -> PackId {
        match self.ids {
            Ids::Names => *id,
            Ids::Local => PackId(self.codec.name(&id.0)),
        }
    }

    /// Where a local pack sent inside a bundle lies: the bundle's name and
    /// the pack's range there.
    fn in_bundle(&self, id: &PackId) -> Option<(PackId, Member)> {
        let (bundle, m) = self.bundled.get(id).filter(|_| self.ids == Ids::Local)?;
        Some((self.name(bundle), *m))
    }

    /// The head of sealed pack `name`: fetched once, then kept.
    fn head_of(&self, name: &PackId) -> Result<Arc<Head>> {
        if let Some(head) = self.heads.lock().expect("heads").get(name) {
            return Ok(head.clone());
        }
        let key = pack_key(name);
        let size = self.size_of(&key, name)?;
        let end = self.fetch(&key, size.saturating_sub(HEAD), size)?;
        let head = match seal::is_sealed(&end) {
            true => self.head_from(&key, size, &end)?,
            false => Head::Age,
        };
        Ok(self.remember(name, head))
    }

    /// Keeps the head of pack `name` (forgetting all others at `HEADS`).
    fn remember(&self, name: &PackId, head: Head) -> Arc<Head> {
        let head = Arc::new(head);
        let mut heads = self.heads.lock().expect("heads");
        if heads.len() >= HEADS {
            heads.clear();
        }
        heads.insert(*name, head.clone());
        head
    }

    /// The head of sealed object `key` of `size` bytes, whose last bytes are
    /// `end` (its trailer is fetched whole when `end` holds only part).
    fn head_from(&self, key: &str, size: u64, end: &[u8]) -> Result<Head> {
        let trailer = seal::trailer_len(key, end, size)?;
        let fetched;
        let trailer_bytes = match trailer <= end.len() as u64 {
            true => &end[end.len() - trailer as usize..],
            false => {
                fetched = self.fetch(key, size - trailer, size)?;
                &fetched[..]
            }
        };
        let pk = seal::unwrap_key(key, trailer_bytes, self.codec.identities())?;
        let layout = Layout::new(key, size - trailer)?;
        Ok(Head::Sealed { key: pk, layout })
    }

    /// The size of object `key` (pack `name`): listed, or asked for.
    fn size_of(&self, key: &str, name: &PackId) -> Result<u64> {
        match self.sizes.get(name) {
            Some(s) => Ok(*s),
            None => self
                .remote
                .size(key)?
                .ok_or_else(|| Error::corrupt(format!("remote pack {key}"), "it is missing")),
        }
    }

    /// Sealed bytes `[start, end)` of object `key`, all of them.
    fn fetch(&self, key: &str, start: u64, end: u64) -> Result<Vec<u8>> {
        let bytes = self.remote.read_range(key, start, end - start)?;
        if bytes.len() as u64 != end - start {
            return Err(Error::corrupt(
                format!("remote pack {key}"),
                "shorter than its size",
            ));
        }
        Ok(bytes)
    }

    /// The plain bytes of pack `name`, sealed in seal format 1.
    fn old_pack(&self, name: &PackId) -> Result<Arc<Vec<u8>>> {
        if let Some((_, plain)) = self
            .old
            .lock()
            .expect("old")
            .iter()
            .find(|(n, _)| n == name)
        {
            return Ok(plain.clone());
        }
        let key = pack_key(name);
        let plain = Arc::new(self.codec.open(&key, &self.remote.read(&key)?)?);
        let mut old = self.old.lock().expect("old");
        old.insert(0, (*name, plain.clone()));
        old.truncate(OLD);
        Ok(plain)
    }

    /// `len` plain bytes at `offset` of sealed pack `name`: the sealed
    /// chunks that cover them fetched in one request, then opened.
    fn read_sealed(&self, name: &PackId, offset: u64, len: u64) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let key = pack_key(name);
        match &*self.head_of(name)? {
            Head::Sealed { key: pk, layout } => {
                let (start, end, first) = layout.span(&key, offset, len)?;
                let span = self.fetch(&key, start, end)?;
                seal::open_span(pk, layout, &key, first, span, (offset, len))
            }
            Head::Age => {
                let plain = self.old_pack(name)?;
                let range = offset as usize..(offset + len) as usize;
                plain.get(range).map(<[u8]>::to_vec).ok_or_else(|| {
                    Error::corrupt(format!("remote pack {key}"), "shorter than the read asks")
                })
            }
        }
    }
}

impl PackSource for RemotePacks {
    fn describe(&self) -> String {
        self.remote.url.clone()
    }

    fn read_range(&self, id: &PackId, offset: u64, len: u64) -> Result<Vec<u8>> {
        let (name, offset) = match self.in_bundle(id) {
            Some((bundle, m)) if offset + len <= m.len => (bundle, m.base + offset),
            Some(_) => return Err(Error::corrupt(format!("pack {id}"), "read past its end")),
            None => (self.name(id), offset),
        };
        if let Some((store, local)) = self.local_copy(&name) {
            return store.read_pack_range(&local, offset, len);
        }
        if !self.codec.sealed() {
            return self.remote.read_range(&pack_key(&name), offset, len);
        }
        self.read_sealed(&name, offset, len)
    }

    fn read_pack(&self, id: &PackId) -> Result<Vec<u8>> {
        if let Some((_, m)) = self.in_bundle(id) {
            let plain = self.read_range(id, 0, m.len)?;
            if PackId::of(&plain) != *id {
                return Err(Error::corrupt(
                    format!("pack {id} in a bundle on {}", self.remote.url),
                    "its content does not match its name",
                ));
            }
            return Ok(plain);
        }
        let name = self.name(id);
        let key = pack_key(&name);
        let plain = match self.local_copy(&name) {
            Some((store, local)) => store.read_pack(&local)?,
            None => self.codec.open(&key, &self.remote.read(&key)?)?,
        };
        if !self.codec.is_name(&PackId::of(&plain).0, &name.0) {
            return Err(Error::corrupt(
                format!("remote pack {key}"),
                "its content does not match its name",
            ));
        }
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::crypt;

    #[test]
    fn packs_of_both_seal_formats_read_by_range_and_a_cut_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let remote = Arc::new(Remote::open(&url).unwrap());
        let id = age::x25519::Identity::generate();
        let codec = Codec::Age {
            recipients: vec![id.to_public()],
            identities: vec![id.clone()],
            naming: [5; 32],
            others: vec![],
        };
        let plain: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let (v1, v2, cut) = (PackId([1; 32]), PackId([2; 32]), PackId([3; 32]));
        let sealed = codec.seal(&plain).unwrap();
        let old = crypt::seal_age(&[id.to_public()], &plain).unwrap();
        remote.put_new(&pack_key(&v1), old).unwrap();
        remote.put_new(&pack_key(&v2), sealed.clone()).unwrap();
        // Its fourth and fifth chunks dropped: the third was not sealed as the last.
        let size = sealed.len() as u64;
        let end = (size - seal::trailer_len("x", &sealed, size).unwrap()) as usize;
        let at = 3 * seal::SEALED_CHUNK as usize;
        let dropped = [&sealed[..at], &sealed[end..]].concat();
        remote.put_new(&pack_key(&cut), dropped).unwrap();
        let packs = RemotePacks::new(remote, codec, Ids::Names);
        for name in [v1, v2] {
            let (len, tail) = packs.tail(&name, 70_000).unwrap();
            assert_eq!((len, &tail[..]), (plain.len() as u64, &plain[230_000..]));
            for (off, len) in [(0, 10), (65_530, 100), (100_000, 200_000), (299_999, 1)] {
                let got = packs.read_range(&name, off, len).unwrap();
                assert_eq!(got, &plain[off as usize..(off + len) as usize]);
            }
            assert!(packs.read_range(&name, 299_990, 20).is_err());
        }
        assert_eq!(packs.read_range(&cut, 0, 1000).unwrap(), &plain[..1000]);
        let end = packs.tail(&cut, 10);
        assert!(matches!(end, Err(Error::Corrupt { .. })), "{end:?}");
        let len = 3 * seal::CHUNK;
        let end = packs.read_range(&cut, len - 10, 10);
        assert!(matches!(end, Err(Error::Corrupt { .. })), "{end:?}");
    }
}
