//! sandboxd's end-to-end tests: the built `sandboxd` binary against fake and real
//! peers (see `sandboxd_tests`).
//!
//! One test binary for all of them, so that `cargo test --workspace` links once;
//! each module is one concern and its tests are named after it
//! (`crash::sigkill_during_concurrent_starts_and_deletes_loses_nothing`), so a
//! filter such as `cargo test -p sandboxd-tests --test e2e crash::` runs one
//! family. Every test takes its turn from [`serial`] first: a few run alone.
//!
//! The scenarios of the sandbox API run against both hosts of the plugin, the
//! Rust `sandboxd` and the Node.js `sandboxd-node` ([`hosts`]): each is written
//! once and named `…::on_rust` and `…::on_node`.

mod serial;
#[macro_use]
mod hosts;

mod api_fuzz;
mod crash;
mod failures;
mod fault_table;
mod hostile;
mod isolation;
mod lifecycle;
mod load;
mod local_agent_server;
mod local_runtime;
mod node_host;
mod operations;
mod paging;
mod plugin_containment;
mod plugin_lifecycle;
mod policies;
mod real_agent_server;
mod real_agent_sync;
mod replicas;
mod secrets;
mod startup;
mod storage;
mod sync;
mod users;
