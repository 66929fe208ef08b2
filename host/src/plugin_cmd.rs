//! `sandboxd plugin …`: offline tools for a plugin component.
//!
//! - `check FILE`: compile, link and smoke-test it as `serve` would, and print
//!   its versions and interface. Exit 1 if it would be refused.
//! - `bench [FILE]`: the cost of what every request pays before the plugin does
//!   any work: a fresh store, an instance, one export call (`info`).

use std::path::PathBuf;
use std::time::Instant;

use crate::config::{self, Config, FileConfig};
use crate::plugin::CONTRACT_VERSION;
use crate::serve::assemble;
use crate::timing::Samples;

/// A configuration for running a plugin offline: nothing is contacted, and
/// storage lives in a temporary directory.
fn offline_config(plugin: Option<PathBuf>, data_dir: &std::path::Path) -> anyhow::Result<Config> {
    let mut raw = FileConfig::default();
    raw.runtime.api_url = Some("http://127.0.0.1:9".into());
    raw.runtime.api_key = Some("offline".into());
    raw.data_dir = Some(data_dir.to_path_buf());
    let mut config = config::validate(raw)?;
    config.plugin.path = plugin;
    Ok(config)
}

pub async fn check(file: PathBuf) -> anyhow::Result<bool> {
    let dir = tempfile::tempdir()?;
    let config = offline_config(Some(file.clone()), dir.path())?;
    match assemble(&config).await {
        Ok(parts) => {
            let plugin = parts.plugin.current();
            let (imports, exports) = plugin.interface();
            println!("{}: ok", file.display());
            println!("  plugin version:   {}", plugin.plugin_version);
            println!(
                "  contract version: {} (this host: {CONTRACT_VERSION})",
                plugin.contract_version
            );
            println!("  sha256:           {}", plugin.sha256);
            println!("  imports:          {}", imports.join(", "));
            println!("  exports:          {}", exports.join(", "));
            Ok(true)
        }
        Err(e) => {
            println!("{}: refused: {e:#}", file.display());
            Ok(false)
        }
    }
}

pub async fn bench(file: Option<PathBuf>, iterations: usize, json: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = offline_config(file, dir.path())?;
    let host = assemble(&config).await?.plugin;
    let mut samples = Vec::with_capacity(iterations);
    // Warm up the pool's slots and the caches first.
    for i in 0..iterations + iterations / 10 {
        let started = Instant::now();
        host.info().await?;
        if i >= iterations / 10 {
            samples.push(started.elapsed());
        }
    }
    Samples::new(samples).print("fresh store + instantiate + one export call", json);
    Ok(())
}
