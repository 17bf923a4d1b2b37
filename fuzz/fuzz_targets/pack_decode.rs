//! Arbitrary bytes as a pack: decoding is an error or a valid entry list, never
//! a panic, a hang or an allocation sized by an untrusted length.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    snap::format::fuzzing::pack(data);
});
