//! The one reader of manifest JSON (registry::media) and the referrers list.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kpromo::fuzz::manifest_json(data));
