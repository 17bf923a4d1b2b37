//! A reader's session: the shared lock, the index and a reader, owned
//! together and dropped in that order (the reader first, the lock last), so
//! a command or a long-lived reader (a mount) asks the store for one thing
//! instead of repeating lock → index → reader.

use super::{Index, Store, StoreLock, StoreReader};
use crate::error::Result;
use std::time::Duration;

/// What a reading command holds while it reads (see `Store::reading`).
pub struct Reading {
    // Field order is drop order.
    reader: StoreReader,
    _index: Index,
    _lock: StoreLock,
}

impl Store {
    /// Takes the readers' shared lock (waiting up to `wait`; gc is the one
    /// command that excludes readers), opens the index and a reader over
    /// it. `what` names the holder to whoever waits.
    pub fn reading(&self, what: &str, wait: Duration) -> Result<Reading> {
        let lock = self.lock_shared(what, wait)?;
        let index = self.open_index(&lock)?;
        Ok(Reading {
            reader: StoreReader::new(self, &index)?,
            _index: index,
            _lock: lock,
        })
    }
}

impl std::ops::Deref for Reading {
    type Target = StoreReader;

    fn deref(&self) -> &StoreReader {
        &self.reader
    }
}
