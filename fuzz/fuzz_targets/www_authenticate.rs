//! The WWW-Authenticate parser and the token realm rule.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kpromo::fuzz::www_authenticate(data));
