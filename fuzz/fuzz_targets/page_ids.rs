//! Page ids and event page ids.
//! The checks are in `tests/fuzz/src/page_ids.rs`, shared with the corpus replay
//! that `cargo test` runs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sandboxd_fuzz_targets::page_ids::run(data));
