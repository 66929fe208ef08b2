//! The host side of the WIT imports, one file per interface, and the state each
//! plugin call carries.
//!
//! [`HostState`] is the data of one call's `Store`: who the caller is, the
//! call's limits, and a handle on the shared [`Services`]. It lives exactly as
//! long as the call: nothing a plugin does in one call is visible in the next
//! except through storage.

mod budget;
mod http;
mod log;
mod settings;
mod storage;
mod user;

use std::sync::Arc;

use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

pub use self::budget::{Budget, LimitExceeded, Meter};
pub use self::http::HttpImport;
use self::http::OpenBatches;
pub use self::settings::plugin_settings;
use crate::bindings::settings::Config as PluginSettings;
use crate::storage::Store;

/// What every call shares: the HTTP client, the store, the settings.
pub struct Services {
    pub http: HttpImport,
    pub store: Store,
    pub settings: PluginSettings,
}

pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// What this call has consumed of its budget; also its memory limiter.
    pub meter: Meter,
    /// The user this call acts for; none for admins and the host itself.
    user: Option<String>,
    /// The plugin version this call runs, for log lines.
    plugin_version: Arc<str>,
    services: Arc<Services>,
    /// Batches of outbound requests started and not yet finished.
    batches: OpenBatches,
}

impl HostState {
    pub fn new(
        services: Arc<Services>,
        user: Option<String>,
        plugin_version: Arc<str>,
        budget: Budget,
    ) -> Self {
        HostState {
            // No arguments, environment, files or sockets: WASI is there for the
            // Rust standard library (clock, randomness, stderr), nothing else.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            meter: Meter::new(budget),
            user,
            plugin_version,
            services,
            batches: OpenBatches::default(),
        }
    }
}

impl Drop for HostState {
    fn drop(&mut self) {
        let dropped = self.meter.dropped_log_lines();
        if dropped > 0 {
            tracing::warn!(target: "plugin", plugin = &*self.plugin_version, dropped, "the call logged past its budget; lines were dropped");
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl crate::bindings::types::Host for HostState {}
