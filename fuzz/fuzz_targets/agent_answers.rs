//! Agent-server answers, through whole poll cycles.
//! The checks are in `tests/fuzz/src/agent_answers.rs`, shared with the corpus replay
//! that `cargo test` runs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sandboxd_fuzz_targets::agent_answers::run(data));
