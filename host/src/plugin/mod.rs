//! Loading the plugin component and calling it.
//!
//! One [`PluginHost`] holds the engine, the linker with every import, and the
//! current plugin as an `InstancePre` behind an atomic pointer. Each call gets a
//! fresh `Store` and instance, its own deadline and memory limit; a trap or a
//! timeout fails that call only.
//!
//! Invariants:
//! - A plugin is installed only after it compiled, linked, answered `info` and
//!   declared a compatible contract version ([`load`]).
//! - A call runs entirely on the plugin it started with, even if another is
//!   installed meanwhile.
//! - At most `max_instances` calls run at once (the pooling allocator's slots);
//!   more wait for a slot instead of failing.

mod contract;
mod embedded;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Store, StoreLimitsBuilder, UpdateDeadline};

pub use contract::{CONTRACT_VERSION, compatible};
pub use embedded::EMBEDDED_PLUGIN;

use crate::bindings::{Plugin, PluginPre};
use crate::engine::EngineHandle;
use crate::imports::{HostState, Services};

/// A plugin ready to serve.
pub struct LoadedPlugin {
    pre: PluginPre<HostState>,
    pub plugin_version: Arc<str>,
    pub contract_version: String,
    /// Lower-case hex SHA-256 of the component bytes.
    pub sha256: String,
    /// Where it came from: `embedded` or a file path.
    pub source: String,
    pub loaded_at: SystemTime,
}

impl LoadedPlugin {
    /// The names of the component's imports and exports, for `plugin check`.
    pub fn interface(&self) -> (Vec<String>, Vec<String>) {
        let pre = self.pre.instance_pre();
        let ty = pre.component().component_type();
        let engine = pre.engine();
        let imports = ty
            .imports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let exports = ty
            .exports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        (imports, exports)
    }
}

/// Why a component was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a valid WebAssembly component: {0}")]
    Compile(String),
    #[error("the component does not fit this host's contract {CONTRACT_VERSION}: {0}")]
    Link(String),
    #[error("the component failed its first call (info): {0}")]
    Smoke(String),
    #[error(
        "the component was built against contract {plugin}, which this host (contract {host}) cannot run"
    )]
    Contract { plugin: String, host: &'static str },
}

/// Why a call produced no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the plugin did not answer within {0:?}")]
    Timeout(Duration),
    /// The plugin trapped (a bug, or an exhausted limit); the id ties the
    /// caller's error to the log line with the details.
    #[error("the plugin failed (error id {id})")]
    Trap { id: String },
}

/// Raised by the epoch callback when a call passes its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the plugin call exceeded its deadline")]
struct DeadlineExceeded;

/// Per-call limits.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    pub timeout: Duration,
    pub memory_bytes: usize,
}

pub struct PluginHost {
    engine: EngineHandle,
    current: ArcSwap<LoadedPlugin>,
    services: Arc<Services>,
    slots: Semaphore,
    limits: CallLimits,
}

impl PluginHost {
    /// A host running `wasm` (from `source`), which must pass [`PluginHost::load`].
    pub async fn new(
        engine: EngineHandle,
        services: Arc<Services>,
        limits: CallLimits,
        max_instances: u32,
        wasm: &[u8],
        source: &str,
    ) -> anyhow::Result<PluginHost> {
        let mut linker = Linker::<HostState>::new(&engine.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)?;
        let first = load(&engine, &linker, &services, limits, wasm, source).await?;
        Ok(PluginHost {
            engine,
            current: ArcSwap::from_pointee(first),
            services,
            slots: Semaphore::new(max_instances as usize),
            limits,
        })
    }

    /// The plugin new calls run on.
    pub fn current(&self) -> Arc<LoadedPlugin> {
        self.current.load_full()
    }

    /// Run one call: a fresh store and instance of the current plugin for `user`,
    /// then `f` with them, under the call's deadline and memory limit.
    pub async fn call<R, F, Fut>(&self, user: Option<String>, f: F) -> Result<R, CallError>
    where
        F: FnOnce(Plugin, Store<HostState>) -> Fut,
        Fut: Future<Output = wasmtime::Result<R>>,
    {
        self.call_with_timeout(user, self.limits.timeout, f).await
    }

    /// [`PluginHost::call`] with another deadline (a poll cycle's is longer).
    pub async fn call_with_timeout<R, F, Fut>(
        &self,
        user: Option<String>,
        timeout: Duration,
        f: F,
    ) -> Result<R, CallError>
    where
        F: FnOnce(Plugin, Store<HostState>) -> Fut,
        Fut: Future<Output = wasmtime::Result<R>>,
    {
        // The semaphore is never closed, so acquiring cannot fail; without a
        // permit the call still runs (and may then find the pool busy).
        let _slot = self.slots.acquire().await.ok();
        let plugin = self.current();
        let limits = CallLimits {
            timeout,
            ..self.limits
        };
        run(&self.engine, &self.services, limits, &plugin, user, f).await
    }
}

async fn run<R, F, Fut>(
    engine: &EngineHandle,
    services: &Arc<Services>,
    limits: CallLimits,
    plugin: &LoadedPlugin,
    user: Option<String>,
    f: F,
) -> Result<R, CallError>
where
    F: FnOnce(Plugin, Store<HostState>) -> Fut,
    Fut: Future<Output = wasmtime::Result<R>>,
{
    let store_limits = StoreLimitsBuilder::new()
        .memory_size(limits.memory_bytes)
        .trap_on_grow_failure(true)
        .build();
    let state = HostState::new(
        services.clone(),
        user,
        plugin.plugin_version.clone(),
        store_limits,
    );
    let mut store = Store::new(&engine.engine, state);
    store.limiter(|state| &mut state.limits);
    let clock = engine.clock.clone();
    let deadline = clock.deadline(limits.timeout);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if clock.now() >= deadline {
            Err(DeadlineExceeded.into())
        } else {
            // Let other tasks run between slices of a long computation.
            Ok(UpdateDeadline::Yield(1))
        }
    });
    let work = async move {
        let instance = plugin.pre.instantiate_async(&mut store).await?;
        f(instance, store).await
    };
    // The epoch deadline stops a plugin that computes too long; this one stops a
    // call that waits too long on the network between computations.
    match tokio::time::timeout(limits.timeout + Duration::from_secs(1), work).await {
        Ok(Ok(value)) => Ok(value),
        Err(_) => Err(CallError::Timeout(limits.timeout)),
        Ok(Err(e)) if e.downcast_ref::<DeadlineExceeded>().is_some() => {
            Err(CallError::Timeout(limits.timeout))
        }
        Ok(Err(e)) => {
            let id = error_id();
            tracing::error!(error_id = %id, plugin = &*plugin.plugin_version, error = format!("{e:?}"), "plugin call trapped");
            Err(CallError::Trap { id })
        }
    }
}

/// Compile, link and smoke-test a component.
async fn load(
    engine: &EngineHandle,
    linker: &Linker<HostState>,
    services: &Arc<Services>,
    limits: CallLimits,
    wasm: &[u8],
    source: &str,
) -> Result<LoadedPlugin, LoadError> {
    let sha256 = hex(&Sha256::digest(wasm));
    let compile_engine = engine.engine.clone();
    let bytes = wasm.to_vec();
    let component = tokio::task::spawn_blocking(move || Component::new(&compile_engine, &bytes))
        .await
        .map_err(|e| LoadError::Compile(e.to_string()))?
        .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| LoadError::Link(format!("{e:#}")))?;
    let pre = PluginPre::new(pre).map_err(|e| LoadError::Link(format!("{e:#}")))?;

    let mut candidate = LoadedPlugin {
        pre,
        plugin_version: Arc::from("(loading)"),
        contract_version: String::new(),
        sha256,
        source: source.to_owned(),
        loaded_at: SystemTime::now(),
    };
    let info = run(engine, services, limits, &candidate, None, |plugin, mut store| async move {
        plugin.sandboxd_plugin_info().call_info(&mut store).await
    })
    .await
    .map_err(|e| LoadError::Smoke(e.to_string()))?;
    if !compatible(CONTRACT_VERSION, &info.contract_version) {
        return Err(LoadError::Contract {
            plugin: info.contract_version,
            host: CONTRACT_VERSION,
        });
    }
    candidate.plugin_version = Arc::from(info.plugin_version.as_str());
    candidate.contract_version = info.contract_version;
    Ok(candidate)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A short random id to find a failure's log line from the caller's error.
pub fn error_id() -> String {
    let mut bytes = [0u8; 6];
    // Uniqueness, not secrecy, matters here; the clock is a fine fallback.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes.copy_from_slice(&nanos.to_le_bytes()[..6]);
    }
    hex(&bytes)
}
