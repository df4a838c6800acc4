//! The manifest YAML loader, validation rules and edge set (plain manifests and thin projects).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kpromo::fuzz::manifest_yaml(data));
