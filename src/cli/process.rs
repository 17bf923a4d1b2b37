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

impl super::Command {
    /// Reads and writes whole stores or snapshots in big buffers (see
    /// `tune_malloc`); `take` is left out, where it cost peak memory.
    fn reads_in_bulk(&self) -> bool {
        matches!(
            self,
            super::Command::Restore(_)
                | super::Command::Mirror(_)
                | super::Command::Clone(_)
                | super::Command::Verify(_)
        )
    }

    /// Captures data (a take, or jobs that take).
    fn takes(&self) -> bool {
        matches!(
            self,
            super::Command::Take(_) | super::Command::Run(_) | super::Command::Daemon(_)
        )
    }

    /// Stops at a safe point on SIGINT or SIGTERM (a second signal ends it
    /// at once); the others die at once, which their crash safety allows.
    fn stops_at_safe_points(&self) -> bool {
        matches!(
            self,
            super::Command::Take(_)
                | super::Command::Restore(_)
                | super::Command::Recover(_)
                | super::Command::Mount(_)
                | super::Command::Watch(_)
        )
    }

    /// A second signal ends it at once. Not a mount: one signal often
    /// arrives twice (`timeout` sends it to the process and to its group),
    /// and a mount that dies mounted leaves a dead mount point behind.
    fn second_signal_ends_it(&self) -> bool {
        !matches!(self, super::Command::Mount(_))
    }

    /// No network: a closed stdout may end the process (SIGPIPE).
    fn prints_only_locally(&self) -> bool {
        let argv: Vec<String> = std::env::args().collect();
        let remote = argv
            .iter()
            .any(|a| a == "--remote" || a.starts_with("--remote="));
        !remote
            && !matches!(
                self,
                super::Command::Mirror(_)
                    | super::Command::Clone(_)
                    | super::Command::Run(_)
                    | super::Command::Daemon(_)
            )
    }
}
