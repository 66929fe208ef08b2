//! The default plugin, built from `../plugin` by `build.rs` and embedded in the
//! binary so that `sandboxd serve` needs no file beside it.

pub const EMBEDDED_PLUGIN: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/sandboxd_plugin.wasm"));
