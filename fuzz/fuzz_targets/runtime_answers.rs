//! Runtime API answers, read tolerantly (see the checks for what is asserted).
//! The checks are in `tests/fuzz/src/runtime_answers.rs`, shared with the corpus replay
//! that `cargo test` runs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sandboxd_fuzz_targets::runtime_answers::run(data));
