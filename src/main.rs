//! The `snap` binary: parse, run, map errors to exit codes (see README).

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let hint = match e.chain().find_map(|c| c.downcast_ref::<snap::Error>()) {
                Some(snap::Error::Locked { .. }) => {
                    " (pass a longer --lock-wait to wait more)".into()
                }
                Some(snap::Error::Refused { option, .. }) => {
                    format!(" (pass --{} to allow it)", option.replace('_', "-"))
                }
                _ => String::new(),
            };
            eprintln!("snap: {e:#}{hint}");
            let code = e
                .chain()
                .find_map(|c| c.downcast_ref::<snap::Error>())
                .map_or(1, |e| e.exit_code());
            ExitCode::from(code as u8)
        }
    }
}

mod cli;
