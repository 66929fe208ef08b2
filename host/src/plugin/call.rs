//! One plugin call: a fresh store and instance, a deadline, a budget, and the
//! failures turned into [`CallError`]s.
//!
//! Invariant: whatever the plugin does, a call ends within its deadline (plus
//! the one-second network grace) with a value or a `CallError`, and leaves
//! nothing behind but what it committed to storage.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use wasmtime::{Store, UpdateDeadline};

use super::LoadedPlugin;
use super::PluginInstance;
use crate::engine::EngineHandle;
use crate::imports::{Budget, HostState, LimitExceeded, Services};

/// The deadline and budget of one kind of call.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    pub timeout: Duration,
    pub budget: Budget,
}

/// Why a call produced no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the plugin did not answer within {0:?}")]
    Timeout(Duration),
    /// The call wanted more memory, requests or storage than its budget.
    #[error("{limit} (error id {id})")]
    Limit { limit: LimitExceeded, id: String },
    /// The plugin trapped (a bug); the id ties the caller's error to the log
    /// line with the details.
    #[error("the plugin failed (error id {id})")]
    Trap { id: String },
}

/// Raised by the epoch callback when a call passes its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the plugin call exceeded its deadline")]
struct DeadlineExceeded;

/// Run `f` on a fresh instance of `plugin` for `user`, within `limits`.
pub async fn run<R, F, Fut>(
    engine: &EngineHandle,
    services: &Arc<Services>,
    limits: CallLimits,
    plugin: &LoadedPlugin,
    user: Option<String>,
    f: F,
) -> Result<R, CallError>
where
    F: FnOnce(PluginInstance, Store<HostState>) -> Fut,
    Fut: Future<Output = wasmtime::Result<R>>,
{
    let state = HostState::new(
        services.clone(),
        user,
        plugin.plugin_version.clone(),
        limits.budget,
    );
    let mut store = Store::new(&engine.engine, state);
    store.limiter(|state| &mut state.meter);
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
        let instance = plugin
            .pre
            .instance_pre()
            .instantiate_async(&mut store)
            .await?;
        f(PluginInstance::new(instance, plugin.exports.clone()), store).await
    };
    // The epoch deadline stops a plugin that computes too long; this one stops a
    // call that waits too long on the network between computations.
    let outcome = tokio::time::timeout(limits.timeout + Duration::from_secs(1), work).await;
    let error = match outcome {
        Ok(Ok(value)) => return Ok(value),
        Err(_) => return Err(CallError::Timeout(limits.timeout)),
        Ok(Err(e)) => e,
    };
    if error.downcast_ref::<DeadlineExceeded>().is_some() {
        tracing::warn!(plugin = &*plugin.plugin_version, timeout = ?limits.timeout, "plugin call stopped at its deadline");
        return Err(CallError::Timeout(limits.timeout));
    }
    let id = error_id();
    if let Some(limit) = error.downcast_ref::<LimitExceeded>() {
        tracing::error!(error_id = %id, plugin = &*plugin.plugin_version, %limit, "plugin call stopped at its limit");
        return Err(CallError::Limit {
            limit: limit.clone(),
            id,
        });
    }
    tracing::error!(error_id = %id, plugin = &*plugin.plugin_version, error = format!("{error:?}"), "plugin call trapped");
    Err(CallError::Trap { id })
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
    hex::encode(bytes)
}
