//! Stopping at a safe point. The binary's signal handlers (SIGINT,
//! SIGTERM) set one flag; long operations (take, restore, mirror, verify)
//! check it between steps and return `Error::Interrupted` after undoing or
//! recording what they did, so an interrupted command never leaves a state
//! nobody is told about.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The flag a signal handler sets to ask for a stop (e.g. with
/// `signal_hook::flag::register`).
pub fn flag() -> Arc<AtomicBool> {
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
        .clone()
}

/// Asks every running operation to stop at its next safe point.
pub fn request() {
    flag().store(true, Ordering::SeqCst);
}

/// Whether a stop was asked for.
pub(crate) fn requested() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::Relaxed))
}

/// `Err(Interrupted)` once a stop was asked for.
pub(crate) fn check() -> Result<()> {
    if requested() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}
