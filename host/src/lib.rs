//! `sandboxd`: the sandbox control plane for AI agents.
//!
//! The host is plumbing around a WebAssembly plugin that holds the logic:
//! - [`config`]: TOML + environment → a validated configuration;
//! - [`engine`], [`plugin`]: wasmtime, the component, per-call isolation;
//! - [`imports`]: what the plugin may use (HTTP, storage, user, log, settings);
//! - [`storage`]: redb behind the WIT storage interface;
//! - [`api`]: the HTTP API the app talks to.
//!
//! The `sandboxd` binary (`src/main.rs`) is the command line over this library;
//! the library exists so that other crates (the fuzz targets in `fuzz/`) can
//! reach the host's code, such as the configuration parser.

pub mod api;
pub mod bindings;
pub mod cluster;
pub mod config;
pub mod egress;
pub mod engine;
pub mod host_key;
pub mod imports;
// Crate-private: its process supervision is reached only through `serve`.
mod local_runtime;
pub mod metrics;
pub mod plugin;
pub mod plugin_cmd;
pub mod serve;
pub mod storage;
pub mod store_cmd;
pub mod sync;
pub mod timing;
