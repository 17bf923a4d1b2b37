//! Progress of long operations, reported through a callback the caller
//! supplies (the CLI draws bars with totals, rates and ETA; a library user
//! may log, or pass nothing). The library never draws anything itself.

use std::sync::Arc;

/// One thing a long operation reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A phase begins: what it does, and its total when known (bytes, or
    /// items when `bytes` is false).
    Start {
        /// What the phase does ("take", "gc: repack", …).
        phase: String,
        /// Its total, when known.
        total: Option<u64>,
        /// Whether the total counts bytes (else items).
        bytes: bool,
    },
    /// `n` more done in the current phase.
    Advance(u64),
    /// The current phase is done.
    Finish,
    /// Waiting for a lock another process holds (said once per wait).
    Waiting {
        /// Who holds the lock, as the holder wrote it.
        holder: String,
    },
    /// A step worth naming to someone who asked for detail (`-v`): which
    /// parent a take compares with, each database captured, each target.
    Note(String),
}

/// A progress callback; cheap to clone, callable from any thread.
#[derive(Clone, Default)]
pub struct Reporter(Option<Arc<dyn Fn(Event) + Send + Sync>>);

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Reporter(..)"
        } else {
            "Reporter(none)"
        })
    }
}

impl Reporter {
    /// Reports to `f`.
    pub fn new(f: impl Fn(Event) + Send + Sync + 'static) -> Reporter {
        Reporter(Some(Arc::new(f)))
    }

    /// Reports nothing.
    pub fn none() -> Reporter {
        Reporter(None)
    }

    /// Reports one event.
    pub fn send(&self, e: Event) {
        if let Some(f) = &self.0 {
            f(e)
        }
    }

    /// A phase counted in bytes begins.
    pub fn start(&self, phase: &str, total: Option<u64>) {
        self.send(Event::Start {
            phase: phase.into(),
            total,
            bytes: true,
        })
    }

    /// A phase counted in items begins.
    pub(crate) fn start_items(&self, phase: &str, total: Option<u64>) {
        self.send(Event::Start {
            phase: phase.into(),
            total,
            bytes: false,
        })
    }

    /// `n` more done.
    pub(crate) fn advance(&self, n: u64) {
        if n > 0 {
            self.send(Event::Advance(n))
        }
    }

    /// The phase is done.
    pub fn finish(&self) {
        self.send(Event::Finish)
    }

    /// Names a step (shown with `-v`).
    pub fn note(&self, text: impl Into<String>) {
        if self.0.is_some() {
            self.send(Event::Note(text.into()))
        }
    }
}
