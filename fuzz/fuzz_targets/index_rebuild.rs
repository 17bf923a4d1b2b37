//! Arbitrary bytes as a pack file in a store: `rebuild_index` leaves it out
//! with an error or indexes exactly what its header says; it never panics.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    snap::format::fuzzing::index_rebuild(data);
});
