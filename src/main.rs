//! The `snap` binary: parse, run, map errors to exit codes (see README).

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("snap: {e:#}");
            let code = e
                .chain()
                .find_map(|c| c.downcast_ref::<snap::Error>())
                .map_or(1, |e| e.exit_code());
            ExitCode::from(code as u8)
        }
    }
}

mod cli;
