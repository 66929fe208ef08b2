//! The bodies of sandboxd's fuzz targets, one module each, for what sandboxd
//! reads from outside. Each `run(data)` checks properties of one input (and
//! panics when one fails), so the same body serves two masters:
//!
//! - `fuzz/` (cargo-fuzz, libFuzzer): each target there is one line calling a
//!   `run` here, fed by the fuzzer (`scripts/fuzz.sh`);
//! - `cargo test`: `tests/corpora.rs` calls each `run` on every committed input
//!   of `fuzz/corpus/<target>/`, so what a fuzzer once found stays fixed, with
//!   nothing but Rust installed.
//!
//! - [`runtime_answers`]: runtime API answers, read tolerantly;
//! - [`agent_answers`]: agent-server answers through whole poll cycles;
//! - [`webhook_bodies`]: webhook bodies;
//! - [`page_ids`]: page ids and event page ids;
//! - [`config`]: the configuration file with its environment;
//! - [`world`]: what they share.

pub mod agent_answers;
pub mod config;
pub mod page_ids;
pub mod runtime_answers;
pub mod webhook_bodies;
pub mod world;

/// A target's checks of one input.
pub type Target = fn(&[u8]);

/// Every target by name, as `fuzz/` and `fuzz/corpus/` name them.
pub const TARGETS: [(&str, Target); 5] = [
    ("runtime_answers", runtime_answers::run),
    ("agent_answers", agent_answers::run),
    ("webhook_bodies", webhook_bodies::run),
    ("page_ids", page_ids::run),
    ("config", config::run),
];
