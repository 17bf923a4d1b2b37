//! Where pack bytes come from when the store's own directory cannot give
//! them: the one interface between the store and anything remote. The store
//! knows nothing of what implements it (the mirror's remote packs, another
//! store's directory); it only asks for bytes by pack id.

use crate::error::Result;
use crate::id::PackId;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// A source of pack bytes by pack id.
pub trait PackSource: Send + Sync {
    /// What to call it in messages (e.g. a remote's URL).
    fn describe(&self) -> String;
    /// `len` bytes of pack `id` at `offset`. Not checked here: every entry
    /// read from them is checked against its chunk id when decoded.
    fn read_range(&self, id: &PackId, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// The whole pack, checked by the source against the name it has there
    /// (so a pack read whole is never corrupt without an error).
    fn read_pack(&self, id: &PackId) -> Result<Vec<u8>>;
}

/// How a store uses its source.
#[derive(Clone)]
pub(crate) enum Packs {
    /// Only the store's own directory.
    Own,
    /// The store is a view: every pack comes from the source.
    View(Arc<dyn PackSource>),
    /// Own directory first; a pack missing or damaged there is read from the
    /// source, and its id is noted in `fell_back` (reported, never silent).
    Fallback(Arc<dyn PackSource>, Arc<Mutex<BTreeSet<PackId>>>),
}

impl std::fmt::Debug for Packs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Packs::Own => write!(f, "Own"),
            Packs::View(s) => write!(f, "View({})", s.describe()),
            Packs::Fallback(s, _) => write!(f, "Fallback({})", s.describe()),
        }
    }
}
