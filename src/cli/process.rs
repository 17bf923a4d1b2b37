//! What the process sets up before a command runs: the allocator for the
//! command's kind, SIGPIPE for commands that only print locally, and the
//! signals that stop a command at a safe point.

use super::{alloc, Command};
use anyhow::Result;

/// Sets the process up for `command`.
pub fn prepare(command: &Command) -> Result<()> {
    if command.reads_in_bulk() {
        alloc::tune_malloc();
    }
    if command.takes() {
        alloc::limit_arenas();
    }
    if command.prints_only_locally() {
        // Like any Unix tool: `snap list | head -1` ends quietly when head
        // closes the pipe. Commands that talk to a remote keep Rust's default
        // (SIGPIPE ignored), so a closed socket is an error, not a death.
        // SAFETY: restoring the default disposition of a signal at start-up,
        // before any thread is spawned.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    if command.stops_at_safe_points() {
        let flag = snap::cancel::flag();
        let hurry = command.second_signal_ends_it();
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            if hurry {
                signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone())?;
            }
            signal_hook::flag::register(sig, flag.clone())?;
        }
    }
    Ok(())
}
