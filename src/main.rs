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
            let hint = kind.map(hint).unwrap_or_default();
            let code = kind.map_or(1, |e| e.exit_code());
            cli::print_error(&format!("{}{hint}", message(&e)), code);
            ExitCode::from(code as u8)
        }
    }
}

/// The command or flag that acts on an error: the library names the
/// remedy (rebuild the index, give the identity), the binary its spelling.
fn hint(e: &snap::Error) -> String {
    let text = e.to_string();
    let said = |s: &str| text.contains(s);
    match e {
        snap::Error::Locked { .. } => " (pass a longer --lock-wait to wait more)".into(),
        snap::Error::Refused { option, .. } => {
            format!(" (pass --{} to allow it)", option.replace('_', "-"))
        }
        snap::Error::NotFound(_) if said("no snap store") => " (run `snap init`)".into(),
        snap::Error::Key(_) if said("is encrypted") => {
            " (--identity FILE or SNAP_IDENTITY_FILE)".into()
        }
        snap::Error::Key(_) if said("recipient") => {
            " (`snap key generate` or `snap key add-recipient`)".into()
        }
        snap::Error::Corrupt { .. } if said("rebuilding") => " (`snap repair index`)".into(),
        snap::Error::Corrupt { .. } if said("verify names") => " (`snap verify`)".into(),
        _ => String::new(),
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
