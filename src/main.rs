//! The `snap` binary: parse, run, map errors to exit codes (see README).

use std::process::ExitCode;

fn main() -> ExitCode {
    tune_malloc();
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

/// glibc returns every freed buffer of a few MiB (a read batch, a fetched
/// span of a pack) to the kernel, so the next one is faulted in again, page
/// by page: a fifth of a sealed `restore --remote`'s time went to page
/// faults. A fixed mmap threshold of 64 MiB and a trim threshold of 256 MiB
/// keep such buffers in the heap for reuse. Measured (DESIGN.md, parameters):
/// a 512 MiB file restored from a sealed remote 1.33 s -> 0.94 s, from a
/// plaintext one 0.68 s -> 0.55 s; peak RSS of a daily take of the 1 GB
/// database 78 -> 83 MiB.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any
    // thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}
