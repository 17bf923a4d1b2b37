//! Where each thing lives in the store's directory (see the module doc of
//! `store`), and the local pack files: only the store computes a path
//! inside itself; callers ask for a pack's bytes, size or header.

use super::{packs, Store};
use crate::durable;
use crate::error::{Error, Result};
use crate::format::pack::PackEntry;
use crate::id::{PackId, SnapshotId};
use std::fs;
use std::path::PathBuf;

impl Store {
    /// Where this store's pack `id` can be read locally (None in a view).
    pub(crate) fn readable_pack_path(&self, id: &PackId) -> Option<PathBuf> {
        (!self.is_view()).then(|| self.pack_path(id))
    }

    /// The size of local pack `id`; None in a view or when it is missing.
    pub(crate) fn local_pack_size(&self, id: &PackId) -> Option<u64> {
        let path = self.readable_pack_path(id)?;
        fs::metadata(path).ok().map(|m| m.len())
    }

    /// The bytes of local pack `id`; None in a view or when unreadable.
    pub(crate) fn local_pack(&self, id: &PackId) -> Option<Vec<u8>> {
        fs::read(self.readable_pack_path(id)?).ok()
    }

    /// The header of local pack `id`; None in a view, or when it is missing
    /// or its header unreadable.
    pub(crate) fn local_header(&self, id: &PackId) -> Option<Vec<PackEntry>> {
        packs::read_header(&self.readable_pack_path(id)?).ok()
    }

    /// Whether this store (not a view) has no file for pack `id`.
    pub(crate) fn lacks_pack(&self, id: &PackId) -> bool {
        !self.is_view() && !self.pack_path(id).exists()
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn pack_path(&self, id: &PackId) -> PathBuf {
        let hex = id.to_hex();
        self.root
            .join("packs")
            .join(&hex[..2])
            .join(format!("{hex}.pack"))
    }

    pub(crate) fn snapshot_path(&self, id: &SnapshotId) -> PathBuf {
        self.root.join("snapshots").join(format!("{id}.json"))
    }

    pub(crate) fn index_path(&self) -> PathBuf {
        self.root.join("index.redb")
    }

    /// The index file's size in bytes (0 when there is none).
    pub fn index_bytes(&self) -> u64 {
        fs::metadata(self.index_path()).map_or(0, |m| m.len())
    }

    /// Writes a whole pack (one read from a remote, opened and checked by
    /// the caller) under its name, durably: the BLAKE3 of `bytes`.
    pub(crate) fn put_pack(&self, bytes: &[u8]) -> Result<PackId> {
        let id = PackId::of(bytes);
        let path = self.pack_path(&id);
        durable::create_dir_durable(path.parent().expect("packs/xx"))?;
        durable::write_atomic(&self.tmp_dir(), &path, bytes)?;
        Ok(id)
    }

    /// The bytes of local pack `id`.
    pub(crate) fn read_pack(&self, id: &PackId) -> Result<Vec<u8>> {
        let path = self.pack_path(id);
        fs::read(&path).map_err(Error::io("read", &path))
    }

    /// `len` bytes of local pack `id` from `offset`.
    pub(crate) fn read_pack_range(&self, id: &PackId, offset: u64, len: u64) -> Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let path = self.pack_path(id);
        let file = fs::File::open(&path).map_err(Error::io("open pack", &path))?;
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, offset)
            .map_err(Error::io("read pack", &path))?;
        Ok(buf)
    }

    /// Every pack in the store with its size in bytes, whatever the index
    /// says (ids in order).
    pub fn pack_sizes(&self) -> Result<Vec<(PackId, u64)>> {
        let files = self.pack_files()?;
        let size = |(id, path): (PackId, PathBuf)| {
            let len = fs::metadata(&path).map_err(Error::io("stat", &path))?.len();
            Ok((id, len))
        };
        files.into_iter().map(size).collect()
    }

    /// Every pack file in the store, whatever the index says.
    pub(crate) fn pack_files(&self) -> Result<Vec<(PackId, PathBuf)>> {
        let mut out = Vec::new();
        let packs = self.root.join("packs");
        for sub in fs::read_dir(&packs).map_err(Error::io("read", &packs))? {
            let sub = sub.map_err(Error::io("read", &packs))?.path();
            if !sub.is_dir() {
                continue;
            }
            for f in fs::read_dir(&sub).map_err(Error::io("read", &sub))? {
                let path = f.map_err(Error::io("read", &sub))?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if let Some(id) = name.strip_suffix(".pack").and_then(PackId::from_hex) {
                    out.push((id, path));
                }
            }
        }
        out.sort();
        Ok(out)
    }
}
