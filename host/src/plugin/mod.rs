//! The plugin: loading it, calling it, swapping it.
//!
//! One [`PluginHost`] holds the engine, the linker with every import, and the
//! current plugin as an `InstancePre` behind an atomic pointer. Each call gets a
//! fresh `Store` and instance, its own deadline and budget; a trap, a timeout or
//! an exhausted limit fails that call only.
//!
//! - [`exports`]: the typed door, one method per export (the only way in);
//! - [`caller`]: who a call acts for, and so which limits it gets;
//! - [`call`]: one call, its limits and its failures;
//! - [`instance`]: a fresh instance, and the exports of the interface a call uses;
//! - [`load`]: compile, check the contract, link, smoke-test;
//! - [`cache`]: compiled components on disk;
//! - [`lifecycle`]: reloading from the plugin file, atomically;
//! - [`watch`]: the file watcher and SIGHUP.
//!
//! Invariants:
//! - A plugin becomes current only after it passed every gate of [`load`].
//! - A call runs entirely on the plugin it started with, even if another is
//!   installed meanwhile.
//! - At most `max_instances` calls (smoke tests included) run at once: the
//!   pooling allocator's slots. More wait for a slot instead of failing.

mod cache;
mod call;
mod caller;
mod contract;
mod embedded;
mod exports;
mod instance;
mod lifecycle;
mod load;
mod watch;

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;
use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker};

pub use call::{CallError, CallLimits, error_id};
pub use caller::Caller;
pub use contract::CONTRACT_VERSION;
pub use embedded::EMBEDDED_PLUGIN;
pub use exports::{Callbacks, Conversations, ExportError, Sandboxes, Specs, Sync};
pub use instance::PluginInstance;
pub use lifecycle::{History, Refusal, Reload, ReloadError, Trigger};
pub use load::{LoadError, LoadedPlugin};
pub use watch::{reload_on_sighup, watch};

use crate::bindings::Plugin;
use crate::engine::EngineHandle;
use crate::imports::{HostState, Services};
use cache::CompileCache;

/// How a [`PluginHost`] runs its plugin.
pub struct HostOptions {
    /// Limits of calls made for API requests.
    pub api: CallLimits,
    /// Limits of background calls: poll cycles, callback deliveries.
    pub background: CallLimits,
    pub max_instances: u32,
    /// Where compiled components are kept.
    pub cache_dir: PathBuf,
    /// The file the plugin is (re)loaded from; none for the embedded one.
    pub file: Option<PathBuf>,
}

pub struct PluginHost {
    runner: Runner,
    background: CallLimits,
    current: ArcSwap<LoadedPlugin>,
    file: Option<PathBuf>,
    /// Held for the whole of a reload: one at a time.
    reloading: tokio::sync::Mutex<()>,
    history: Mutex<History>,
}

/// What preparing and calling a plugin need, whichever plugin it is.
struct Runner {
    engine: EngineHandle,
    linker: Linker<HostState>,
    services: Arc<Services>,
    slots: Semaphore,
    api: CallLimits,
    cache: Arc<CompileCache>,
}

impl PluginHost {
    /// A host running `wasm` (from `source`), which must pass every gate of
    /// [`load`].
    pub async fn new(
        engine: EngineHandle,
        services: Arc<Services>,
        options: HostOptions,
        wasm: Vec<u8>,
        source: &str,
    ) -> anyhow::Result<PluginHost> {
        let mut linker = Linker::<HostState>::new(&engine.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)?;
        let cache = Arc::new(CompileCache::new(options.cache_dir, &engine.engine));
        let runner = Runner {
            engine,
            linker,
            services,
            slots: Semaphore::new(options.max_instances as usize),
            api: options.api,
            cache,
        };
        let first = load::prepare(&runner, wasm, source).await?;
        Ok(PluginHost {
            runner,
            background: options.background,
            current: ArcSwap::from_pointee(first),
            file: options.file,
            reloading: tokio::sync::Mutex::new(()),
            history: Mutex::new(History::default()),
        })
    }

    /// The plugin new calls run on.
    pub fn current(&self) -> Arc<LoadedPlugin> {
        self.current.load_full()
    }

    async fn call_within<R, F, Fut>(
        &self,
        limits: CallLimits,
        user: Option<String>,
        f: F,
    ) -> Result<R, CallError>
    where
        F: FnOnce(PluginInstance, Store<HostState>) -> Fut,
        Fut: Future<Output = wasmtime::Result<R>>,
    {
        // The semaphore is never closed, so acquiring cannot fail; without a
        // permit the call still runs (and may then find the pool busy).
        let _slot = self.runner.slots.acquire().await.ok();
        let plugin = self.current();
        let r = &self.runner;
        call::run(&r.engine, &r.services, limits, &plugin, user, f).await
    }
}
