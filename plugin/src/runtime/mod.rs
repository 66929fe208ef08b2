//! The remote runtime API, as the plugin speaks it.
//!
//! [`Runtime`] is what the API says about one runtime, read tolerantly: every field
//! may be missing, `null` or of the wrong type, and then it is simply absent. The
//! [`client::RuntimeApi`] makes the calls of the contract and turns every failure
//! into a [`client::RuntimeError`] that names the call and the cause.

pub mod client;
mod lenient;
pub mod start;

pub use client::{RuntimeApi, RuntimeError};

/// One runtime as the runtime API describes it. Fields the service does not use
/// are not kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Runtime {
    pub runtime_id: Option<String>,
    /// Our sandbox id.
    pub session_id: Option<String>,
    /// The agent server's base URL.
    pub url: Option<String>,
    pub session_api_key: Option<String>,
    pub status: Option<String>,
    pub pod_status: Option<String>,
    pub status_detail: Option<String>,
}
