//! Test peers and harness for sandboxd's end-to-end tests and benchmarks.
//!
//! Everything here runs on 127.0.0.1 on ports the OS assigns, and stops when its
//! handle is dropped.

pub mod agent_server;
pub mod client;
pub mod fake_agent;
pub mod fake_llm;
pub mod fake_runtime;
pub mod host;
pub mod load;
pub mod plugins;
pub mod postgres;
pub mod receiver;
pub mod sandboxd;
pub mod schemathesis;
mod serve;
pub mod soak;
pub mod swap;
pub mod venv;
