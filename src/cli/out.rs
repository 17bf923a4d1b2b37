//! How results and failures are printed: sizes, counts, times, errors,
//! and the warnings every command owes about the store it opened.

use snap::Store;

pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// "1 snapshot", "3 snapshots".
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Names every in-place restore of `store` that began and did not finish.
pub fn warn_unfinished(store: &Store) {
    match snap::restore::journal::unfinished(store) {
        Ok(list) => {
            for u in list.iter().filter(|u| !u.is_running()) {
                eprintln!("snap: warning: {}", unfinished(u));
            }
        }
        Err(e) => eprintln!("snap: warning: the restore journals cannot be read: {e}"),
    }
}

/// An unfinished in-place restore, in a sentence, with the commands that
/// finish and undo it.
pub fn unfinished(u: &snap::restore::journal::Unfinished) -> String {
    u.describe_with(|r| {
        let path = r
            .path
            .map(|p| format!(" --path '{}'", p.replace('\'', "'\\''")))
            .unwrap_or_default();
        format!("`snap restore {} --in-place{path}`", &r.snapshot[..12])
    })
}

/// Prints a failure on stderr: one line, or with `--json`, a JSON object
/// (`{"error", "exit_code"}`) a monitor can parse.
pub fn print_error(message: &str, code: i32) {
    let json = std::env::args().any(|a| a == "--json");
    if json {
        eprintln!(
            "{}",
            serde_json::json!({"error": message, "exit_code": code})
        );
    } else {
        eprintln!("snap: {message}");
    }
}

/// A time as every human-readable output shows it: RFC 3339, to the second.
pub fn time<Tz: chrono::TimeZone>(t: &chrono::DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
