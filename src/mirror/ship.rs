//! Shipping points: a mirror run as soon as the oldest point not yet sent
//! is `due` old, so every point is on the remote within `lag` of being
//! recorded, and a run carries every point recorded meanwhile (its packs in
//! one bundle, its records in one batch): at most 3600 / `due` runs an hour
//! whatever the commit rate, each creating a hold, a bundle and a batch, and
//! once every `PROBE` also trying to create `config` (which notices a wiped
//! bucket: the next run sends everything again, see `push::config`), and
//! once every `CATALOG` a catalog of the points sent since the last.

use super::{mirror, MirrorOptions, MirrorReport, Remote};
use crate::store::Store;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The default lag: a point is on the remote within 10 s.
pub const LAG: Duration = Duration::from_secs(10);
/// How often a ship run probes the bucket's `config` (noticing a wiped
/// bucket, one request); the runs between trust the local state.
pub(crate) const PROBE: Duration = Duration::from_secs(600);
/// How often ship runs write a catalog (the fleet's view of the points is
/// at most this much behind the bucket); a watch that stops writes one.
pub(crate) const CATALOG: Duration = Duration::from_secs(60);

/// Whether `store` can ship at all (checked before a watch starts, so a
/// store with no recipient is one clear error, not a failed run a second).
/// Without a store (none yet), there is no recipient.
pub fn ready(store: Option<&Store>, plaintext: bool) -> crate::error::Result<()> {
    match store {
        Some(store) => super::push_codec(store, [0; 32], plaintext).map(|_| ()),
        None => super::unsealed(plaintext),
    }
}

/// What one ship run did.
pub enum Shipped {
    /// Sent; the report says what.
    Sent(MirrorReport),
    /// Failed (said, and tried again at the next due time).
    Failed(crate::error::Error),
}

/// The points waiting for the remote.
pub struct Ship {
    lag: Duration,
    /// When the oldest point not yet sent was noted.
    pending: Mutex<Option<Instant>>,
}

impl Ship {
    /// Points shipped within `lag`.
    pub fn new(lag: Duration) -> Ship {
        Ship {
            lag,
            pending: Mutex::new(None),
        }
    }

    /// A point was recorded: it is shipped by its due time.
    pub fn noted(&self) {
        self.pending
            .lock()
            .expect("pending")
            .get_or_insert_with(Instant::now);
    }

    /// How old the oldest waiting point may grow before a run starts: the
    /// lag less what a run and the point's own interval take (at most 3 s,
    /// at most half the lag).
    pub fn due(&self) -> Duration {
        self.lag - (self.lag / 2).min(Duration::from_secs(3))
    }

    /// Runs until `stop`: a mirror whenever points are due, and once more
    /// at the end for what is waiting. A failed run is said through `on`
    /// and the points stay waiting.
    pub fn run(
        &self,
        store: &Store,
        remote: &Arc<Remote>,
        opts: &MirrorOptions,
        stop: &AtomicBool,
        mut on: impl FnMut(Shipped),
    ) {
        let mut opts = MirrorOptions {
            bundle: true,
            ..opts.clone()
        };
        let mut probed: Option<Instant> = None;
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            let since = *self.pending.lock().expect("pending");
            let due = since.is_some_and(|t| stopping || t.elapsed() >= self.due());
            if due {
                *self.pending.lock().expect("pending") = None;
                opts.no_probe = probed.is_some_and(|t| t.elapsed() < PROBE);
                opts.catalog_every = (!stopping).then_some(CATALOG);
                match mirror(store, remote, &opts) {
                    Ok(r) => {
                        if !opts.no_probe {
                            probed = Some(Instant::now());
                        }
                        on(Shipped::Sent(r))
                    }
                    Err(e) => {
                        // The next run probes again.
                        probed = None;
                        // The points wait on, as old as they were.
                        let mut p = self.pending.lock().expect("pending");
                        *p = Some(p.map_or(since.expect("due"), |n| n.min(since.expect("due"))));
                        on(Shipped::Failed(e));
                        if stopping {
                            return;
                        }
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
            if stopping && self.pending.lock().expect("pending").is_none() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
