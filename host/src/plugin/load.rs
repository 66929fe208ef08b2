//! Turning component bytes into a plugin ready to serve, or a reason why not.
//!
//! The steps, each a gate: compile (or load compiled from the cache, off the
//! async executor); read the contract version from the component's interface
//! names and check it against the host's; link against the host's imports and
//! the exports it calls; smoke-test on a fresh instance (`info`, whose
//! declared contract must agree, then a page of specs). Only a component that
//! passes all of them becomes a [`LoadedPlugin`].

use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::call::run;
use super::contract::{CONTRACT_VERSION, compatible, declared_version};
use super::instance::ExportIndices;
use super::{Runner, cache::Compiled};
use crate::bindings::PluginPre;
use crate::imports::HostState;

/// A plugin ready to serve.
pub struct LoadedPlugin {
    pub(super) pre: PluginPre<HostState>,
    pub(super) exports: ExportIndices,
    pub plugin_version: Arc<str>,
    pub contract_version: String,
    /// Lower-case hex SHA-256 of the component bytes.
    pub sha256: String,
    /// Where it came from: `embedded` or a file path.
    pub source: String,
    pub loaded_at: SystemTime,
    /// Milliseconds spent compiling, or loading the compiled form.
    pub compile_millis: f64,
    /// Whether the compiled form came from the on-disk cache.
    pub from_cache: bool,
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
    #[error(
        "the component was built against contract {plugin}, which this host (contract {host}) cannot run \
         (compatible versions share the major version, and below 1.0 the minor version too)"
    )]
    Contract { plugin: String, host: &'static str },
    #[error("the component is not a sandboxd plugin: {0}")]
    NotAPlugin(String),
    #[error("the component does not link against this host (contract {CONTRACT_VERSION}): {0}")]
    Link(String),
    #[error("the component failed its smoke test: {0}")]
    Smoke(String),
}

/// Compile, check, link and smoke-test `wasm` for `host`.
pub(super) async fn prepare(
    host: &Runner,
    wasm: Vec<u8>,
    source: &str,
) -> Result<LoadedPlugin, LoadError> {
    let sha256 = hex::encode(Sha256::digest(&wasm));
    let engine = host.engine.engine.clone();
    let cache = host.cache.clone();
    let key = sha256.clone();
    let Compiled {
        component,
        from_cache,
        millis,
    } = tokio::task::spawn_blocking(move || cache.component(&engine, &wasm, &key))
        .await
        .map_err(|e| LoadError::Compile(e.to_string()))?
        .map_err(LoadError::Compile)?;

    let engine = &host.engine.engine;
    let ty = component.component_type();
    let declared = declared_version(
        ty.imports(engine)
            .map(|(name, _)| name)
            .chain(ty.exports(engine).map(|(name, _)| name)),
    )
    .map_err(LoadError::NotAPlugin)?;
    if !compatible(CONTRACT_VERSION, &declared) {
        return Err(LoadError::Contract {
            plugin: declared,
            host: CONTRACT_VERSION,
        });
    }

    let pre = host
        .linker
        .instantiate_pre(&component)
        .map_err(|e| LoadError::Link(format!("{e:#}")))?;
    let exports = ExportIndices::new(&pre).map_err(|e| LoadError::Link(format!("{e:#}")))?;
    let pre = PluginPre::new(pre).map_err(|e| LoadError::Link(format!("{e:#}")))?;
    let mut candidate = LoadedPlugin {
        pre,
        exports,
        plugin_version: Arc::from("(loading)"),
        contract_version: declared.clone(),
        sha256,
        source: source.to_owned(),
        loaded_at: SystemTime::now(),
        compile_millis: millis,
        from_cache,
    };

    // The smoke test takes an instance slot like any call, so that under full
    // load it waits for one instead of failing for want of one.
    let _slot = host.slots.acquire().await.ok();
    let info = run(
        &host.engine,
        &host.services,
        host.api,
        &candidate,
        None,
        |plugin, mut store| async move {
            let info = plugin.info(&mut store)?.call_info(&mut store).await?;
            let specs = plugin
                .specs(&mut store)?
                .call_search(&mut store, None, 1)
                .await?;
            Ok((info, specs))
        },
    )
    .await;
    let info = match info {
        Ok((info, Ok(_))) => info,
        Ok((_, Err(e))) => return Err(LoadError::Smoke(format!("specs.search failed: {e:?}"))),
        Err(e) => return Err(LoadError::Smoke(e.to_string())),
    };
    if info.contract_version != declared {
        return Err(LoadError::Smoke(format!(
            "info declares contract {} but the component's interfaces are {declared}",
            info.contract_version
        )));
    }
    candidate.plugin_version = Arc::from(info.plugin_version.as_str());
    candidate.loaded_at = SystemTime::now();
    Ok(candidate)
}
