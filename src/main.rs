//! The `snap` binary: parse, run, map errors to exit codes (see README).

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // The error that says what kind of failure this is: a `Stopped`
            // wraps it with what was undone.
            let kind = e
                .chain()
                .find_map(|c| c.downcast_ref::<snap::Error>())
                .map(unwrap_stopped);
            let hint = match kind {
                Some(snap::Error::Locked { .. }) => {
                    " (pass a longer --lock-wait to wait more)".into()
                }
                Some(snap::Error::Refused { option, .. }) => {
                    format!(" (pass --{} to allow it)", option.replace('_', "-"))
                }
                _ => String::new(),
            };
            let code = kind.map_or(1, |e| e.exit_code());
            cli::print_error(&format!("{}{hint}", message(&e)), code);
            ExitCode::from(code as u8)
        }
    }
}

fn unwrap_stopped(e: &snap::Error) -> &snap::Error {
    match e {
        snap::Error::Stopped { cause, .. } => unwrap_stopped(cause),
        other => other,
    }
}

/// The error and its causes, each said once: a cause whose text its
/// parent already quotes is not repeated, and a remote's error (which
/// leads with its root cause) ends the line unless `-v` asks for the
/// client's whole context.
fn message(e: &anyhow::Error) -> String {
    let verbose = std::env::args().any(|a| a == "-v" || a == "--verbose");
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        if !verbose && matches!(cause.downcast_ref(), Some(snap::Error::Remote { .. })) {
            break;
        }
    }
    out
}

mod cli;
