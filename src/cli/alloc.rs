//! Allocator settings some commands start with (glibc only).

/// glibc returns every freed buffer of a few MiB (a read batch, a fetched
/// span of a pack) to the kernel, so the next one is faulted in again, page
/// by page: a fifth of a sealed `restore --remote`'s time went to page
/// faults. A fixed mmap threshold of 64 MiB and a trim threshold of 256 MiB
/// keep such buffers in the heap for reuse (DESIGN.md, parameters). Not for
/// `take`: its peak RSS grew 5–9 MiB for 3 % of its time.
pub fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called at start-up,
    // before any thread is spawned.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// glibc gives each thread that meets contention an arena of its own (up to
/// 8 per core), and each keeps the unit buffers freed in it: on a 10 GiB
/// database's daily take two arenas peaked at 108–109 MiB instead of
/// 133–139, in the same time (2 alternating pairs, 34.0 / 20.4 s against
/// 34.4 / 19.7 s); at 1 GB it changes nothing.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called at start-up,
    // before any thread is spawned.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
