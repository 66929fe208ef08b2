//! The configuration file and its environment.
//! The checks are in `tests/fuzz/src/config.rs`, shared with the corpus replay
//! that `cargo test` runs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sandboxd_fuzz_targets::config::run(data));
