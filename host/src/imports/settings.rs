//! `settings`: the validated configuration the logic needs (no secrets).

use super::HostState;
use crate::bindings::settings::{Config, Host};

impl Host for HostState {
    fn get(&mut self) -> Config {
        self.services.settings.clone()
    }
}

use crate::bindings::settings::{LifecyclePolicy, RuntimeClass as WitRuntimeClass};
use crate::bindings::types::SandboxSpec;
use crate::config::{Config as HostConfig, Policy, RuntimeClass};

/// The plugin's view of the configuration. Specs are stamped with `created_at`
/// (the moment the service loaded them: they have no other birth date).
pub fn plugin_settings(config: &HostConfig, runtime_api_url: &str, created_at: &str) -> Config {
    Config {
        runtime_api_url: runtime_api_url.to_owned(),
        web_url: config.sync.plan.callback_url.clone(),
        resource_factor: config.runtime.resource_factor,
        runtime_class: match config.runtime.runtime_class {
            RuntimeClass::Gvisor => WitRuntimeClass::Gvisor,
            RuntimeClass::Sysbox => WitRuntimeClass::Sysbox,
        },
        start_sandbox_timeout_secs: config.runtime.start_sandbox_timeout_secs,
        max_num_sandboxes: config.runtime.max_num_sandboxes,
        specs: config
            .specs
            .iter()
            .map(|s| SandboxSpec {
                id: s.id.clone(),
                command: s.command.clone(),
                initial_env: s.initial_env.clone(),
                working_dir: s.working_dir.clone(),
                created_at: created_at.to_owned(),
            })
            .collect(),
        agent_request_timeout_ms: u32::try_from(config.sync.request_timeout.as_millis())
            .unwrap_or(u32::MAX),
        spec_policies: config
            .specs
            .iter()
            .map(|s| {
                (
                    s.id.clone(),
                    policy(config.lifecycle.policy_of(&s.lifecycle)),
                )
            })
            .collect(),
        default_policy: policy(config.lifecycle.policy),
        teardown_grace_secs: config.lifecycle.teardown_grace_secs,
        history_retention_secs: config.lifecycle.history_retention_secs,
        warm_pools: config
            .specs
            .iter()
            .filter(|s| s.warm > 0)
            .map(|s| (s.id.clone(), s.warm))
            .collect(),
    }
}

fn policy(p: Policy) -> LifecyclePolicy {
    LifecyclePolicy {
        idle_pause_secs: p.idle_pause,
        max_running_secs: p.max_running,
        delete_paused_after_secs: p.delete_paused_after,
    }
}
