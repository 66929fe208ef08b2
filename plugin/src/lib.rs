//! The sandboxd logic: every rule of the sandbox service, compiled to a
//! `wasm32-wasip2` component that the `sandboxd` host runs.
//!
//! The crate is built twice. For `wasm32` the [`glue`] module binds the WIT world
//! (`../wit`) and turns each exported call into a call on [`service::Service`]. For
//! native `cargo test`, the same service runs against in-memory fakes of the
//! imports ([`ports`] defines them as small traits), which is where the behaviour
//! is tested.
//!
//! Layout, by what each module decides:
//! - [`status`]: runtime state → one of five sandbox statuses.
//! - [`urls`]: the four exposed URLs, in path and subdomain routing.
//! - [`runtime`]: the runtime API client and its tolerant reading of answers.
//! - [`schema`]: storage tables, keys and records (the plugin owns its schema).
//! - [`paging`]: opaque cursor page ids.
//! - [`service`]: the operations (search, get, start, pause, resume, delete, …).
//! - [`specs`]: the sandbox specs.
//! - [`agent`], [`sync`]: the agent servers' conversations and events, by poll
//!   and by webhook.
//! - [`conversations`]: reading what sync stored.
//! - [`callbacks`]: event subscriptions and their deliveries.
//! - [`share`]: which part of the background work a call acts on.
//! - [`allocator`]: the component's allocator, sized for one-call instances.

pub mod agent;
pub mod allocator;
pub mod callbacks;
pub mod conversations;
pub mod error;
pub mod model;
pub mod paging;
pub mod ports;
pub mod runtime;
pub mod schema;
pub mod service;
pub mod session_key;
pub mod share;
pub mod specs;
pub mod status;
pub mod sync;
pub mod time;
pub mod urls;

#[cfg(target_family = "wasm")]
mod glue;

/// In-memory fakes of the imports, for the plugin's own tests and for anyone
/// who drives the service natively (the fuzz targets): the `testing` feature.
#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// The version of the WIT package (`wit/world.wit`) this plugin is built
/// against.
pub const CONTRACT_VERSION: &str = sandboxd_contract::VERSION;

/// This plugin's own version (`SANDBOXD_PLUGIN_VERSION` at build time, or the
/// crate's).
pub const PLUGIN_VERSION: &str = env!("SANDBOXD_PLUGIN_VERSION");
