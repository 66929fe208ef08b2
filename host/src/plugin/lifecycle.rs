//! Swapping the running plugin for the one in its file.
//!
//! The watcher, SIGHUP and `POST /admin/plugin/reload` all end here, in
//! [`PluginHost::reload`]. Reloads run one at a time. The new component is
//! prepared completely (see [`super::load`]) while the old one keeps serving;
//! then one atomic pointer store makes it current. Calls that started before
//! finish on the version they started with.
//!
//! A component that fails any gate is refused: nothing changes, the refusal is
//! logged and kept as the last refused attempt for `GET /admin/plugin`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use super::{LoadError, LoadedPlugin, PluginHost, load};

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The plugin file changed.
    Watch,
    /// SIGHUP.
    Signal,
    /// `POST /admin/plugin/reload`.
    Api,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Watch => "watch",
            Trigger::Signal => "signal",
            Trigger::Api => "api",
        }
    }
}

/// An attempt that was refused.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub at: SystemTime,
    pub trigger: Trigger,
    /// The refused bytes' hash, when they could be read.
    pub sha256: Option<String>,
    pub reason: String,
}

/// What a reload did.
pub enum Reload {
    Swapped {
        from: Arc<LoadedPlugin>,
        to: Arc<LoadedPlugin>,
    },
    /// The file holds the plugin already running.
    Unchanged(Arc<LoadedPlugin>),
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(
        "sandboxd runs its embedded plugin; start it with --plugin FILE.wasm to swap plugins live"
    )]
    NoFile,
    #[error("cannot read the plugin file {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("plugin refused: {0}")]
    Refused(#[from] LoadError),
}

/// The lifecycle's record, for `GET /admin/plugin`.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub swaps: u64,
    pub last_refused: Option<Refusal>,
}

impl PluginHost {
    /// Load the plugin file and, if it differs from the running one and passes
    /// every check, make it current.
    pub async fn reload(&self, trigger: Trigger) -> Result<Reload, ReloadError> {
        let Some(path) = &self.file else {
            return Err(ReloadError::NoFile);
        };
        let _one_at_a_time = self.reloading.lock().await;
        let wasm = match tokio::fs::read(path).await {
            Ok(wasm) => wasm,
            Err(error) => {
                let e = ReloadError::Read {
                    path: path.clone(),
                    error,
                };
                self.refused(trigger, None, &e);
                return Err(e);
            }
        };
        let current = self.current();
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wasm));
        if sha256 == current.sha256 {
            tracing::debug!(
                trigger = trigger.as_str(),
                "the plugin file holds the running plugin"
            );
            return Ok(Reload::Unchanged(current));
        }
        let next = match load::prepare(&self.runner, wasm, &path.display().to_string()).await {
            Ok(next) => Arc::new(next),
            Err(e) => {
                let e = ReloadError::Refused(e);
                self.refused(trigger, Some(sha256), &e);
                return Err(e);
            }
        };
        self.current.store(next.clone());
        crate::metrics::plugin_serving(
            Some((&current.plugin_version, &current.contract_version)),
            (&next.plugin_version, &next.contract_version),
        );
        if let Ok(mut history) = self.history.lock() {
            history.swaps += 1;
        }
        tracing::info!(
            trigger = trigger.as_str(),
            sha256 = %next.sha256,
            from_cache = next.from_cache,
            compile_ms = format!("{:.1}", next.compile_millis),
            "plugin {} -> {}",
            current.plugin_version,
            next.plugin_version
        );
        Ok(Reload::Swapped {
            from: current,
            to: next,
        })
    }

    fn refused(&self, trigger: Trigger, sha256: Option<String>, e: &ReloadError) {
        tracing::warn!(trigger = trigger.as_str(), reason = %e, "plugin reload refused; the running plugin keeps serving");
        if let Ok(mut history) = self.history.lock() {
            history.last_refused = Some(Refusal {
                at: SystemTime::now(),
                trigger,
                sha256,
                reason: e.to_string(),
            });
        }
    }

    /// Swaps so far and the last refused attempt.
    pub fn history(&self) -> History {
        self.history.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// The file the plugin is reloaded from, if any.
    pub fn file(&self) -> Option<&std::path::Path> {
        self.file.as_deref()
    }
}
