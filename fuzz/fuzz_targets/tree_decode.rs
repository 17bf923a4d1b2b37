//! Arbitrary bytes as an encoded tree: an error or a tree of safe names.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    snap::format::fuzzing::tree(data);
});
