//! Webhook bodies: conversation infos and event batches.
//! The checks are in `tests/fuzz/src/webhook_bodies.rs`, shared with the corpus replay
//! that `cargo test` runs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sandboxd_fuzz_targets::webhook_bodies::run(data));
