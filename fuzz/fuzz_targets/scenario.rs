//! cargo-fuzz target: see `fuzz/src/checks.rs` for what `scenario` asserts.
#![no_main]

#[allow(dead_code)] // each target uses one of the shared checks
#[path = "../src/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::scenario(data));
