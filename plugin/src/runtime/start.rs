//! The body of `POST /start`: what a sandbox is asked to be.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::model::{RuntimeClass, SandboxSpec, Settings};
use crate::urls::{WORKER_1_PORT, WORKER_2_PORT};

/// The uid, gid and fs group the agent-server image is built for.
const SANDBOX_UID: u32 = 10001;

/// The agent server's working directory on the runtime (not the spec's, which is
/// where the agent works inside it).
const RUNTIME_WORKING_DIR: &str = "/workspace";

#[derive(Debug, Serialize)]
pub struct StartRequest<'a> {
    pub image: &'a str,
    pub command: Option<&'a [String]>,
    pub working_dir: &'static str,
    #[serde(serialize_with = "as_map")]
    pub environment: Vec<(String, String)>,
    pub session_id: &'a str,
    pub resource_factor: u8,
    pub run_as_user: u32,
    pub run_as_group: u32,
    pub fs_group: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_class: Option<&'static str>,
}

impl<'a> StartRequest<'a> {
    pub fn new(spec: &'a SandboxSpec, settings: &Settings, sandbox_id: &'a str) -> Self {
        StartRequest {
            image: &spec.id,
            command: spec.command.as_deref(),
            working_dir: RUNTIME_WORKING_DIR,
            environment: environment(spec, settings.web_url.as_deref()),
            session_id: sandbox_id,
            resource_factor: settings.resource_factor,
            run_as_user: SANDBOX_UID,
            run_as_group: SANDBOX_UID,
            fs_group: SANDBOX_UID,
            runtime_class: match settings.runtime_class {
                RuntimeClass::Sysbox => Some("sysbox-runc"),
                RuntimeClass::Gvisor => None,
            },
        }
    }
}

/// The sandbox's environment: the spec's, then the webhook and CORS settings when
/// this service has a public URL (so the agent server calls back instead of being
/// polled), then the worker ports (which the exposed WORKER URLs route to). Later
/// entries replace earlier ones of the same name.
pub fn environment(spec: &SandboxSpec, web_url: Option<&str>) -> Vec<(String, String)> {
    let mut env = spec.initial_env.clone();
    if let Some(web_url) = web_url {
        set(
            &mut env,
            "OH_WEBHOOKS_0_BASE_URL",
            format!("{web_url}/api/v1/webhooks"),
        );
        set(&mut env, "OH_ALLOW_CORS_ORIGINS_0", web_url.to_owned());
    }
    set(&mut env, "WORKER_1", WORKER_1_PORT.to_string());
    set(&mut env, "WORKER_2", WORKER_2_PORT.to_string());
    env
}

fn set(env: &mut Vec<(String, String)>, name: &str, value: String) {
    match env.iter_mut().find(|(k, _)| k == name) {
        Some(entry) => entry.1 = value,
        None => env.push((name.to_owned(), value)),
    }
}

fn as_map<S: Serializer>(env: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(env.len()))?;
    for (k, v) in env {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> SandboxSpec {
        SandboxSpec {
            id: "ghcr.io/openhands/agent-server:latest-python".into(),
            command: Some(vec![
                "/usr/local/bin/openhands-agent-server".into(),
                "--port".into(),
                "60000".into(),
            ]),
            initial_env: vec![
                ("LOG_JSON".into(), "true".into()),
                ("WORKER_1".into(), "1".into()),
            ],
            working_dir: "/workspace/project".into(),
            created_at: String::new(),
        }
    }

    fn settings(web_url: Option<&str>, class: RuntimeClass) -> Settings {
        Settings {
            runtime_api_url: "http://rt".into(),
            web_url: web_url.map(str::to_owned),
            resource_factor: 2,
            runtime_class: class,
            start_sandbox_timeout_secs: 120,
            max_num_sandboxes: 10,
            specs: vec![],
            agent_request_timeout_ms: 10_000,
            spec_policies: Vec::new(),
            default_policy: Default::default(),
            teardown_grace_secs: 30,
            history_retention_secs: 604_800,
            warm_pools: Vec::new(),
        }
    }

    #[test]
    fn body_without_web_url_or_sysbox() {
        let spec = spec();
        let body = serde_json::to_value(StartRequest::new(
            &spec,
            &settings(None, RuntimeClass::Gvisor),
            "sb1",
        ))
        .unwrap_or_default();
        assert_eq!(
            body,
            json!({
                "image": "ghcr.io/openhands/agent-server:latest-python",
                "command": ["/usr/local/bin/openhands-agent-server", "--port", "60000"],
                "working_dir": "/workspace",
                "environment": {"LOG_JSON": "true", "WORKER_1": "12000", "WORKER_2": "12001"},
                "session_id": "sb1",
                "resource_factor": 2,
                "run_as_user": 10001,
                "run_as_group": 10001,
                "fs_group": 10001,
            })
        );
    }

    #[test]
    fn web_url_adds_webhooks_and_cors_and_sysbox_adds_the_runtime_class() {
        let spec = spec();
        let s = settings(Some("https://app.example"), RuntimeClass::Sysbox);
        let body = serde_json::to_value(StartRequest::new(&spec, &s, "sb1")).unwrap_or_default();
        assert_eq!(body["runtime_class"], "sysbox-runc");
        assert_eq!(
            body["environment"],
            json!({
                "LOG_JSON": "true",
                "WORKER_1": "12000",
                "OH_WEBHOOKS_0_BASE_URL": "https://app.example/api/v1/webhooks",
                "OH_ALLOW_CORS_ORIGINS_0": "https://app.example",
                "WORKER_2": "12001",
            })
        );
    }

    #[test]
    fn a_spec_without_command_sends_null() {
        let mut spec = spec();
        spec.command = None;
        let body = serde_json::to_value(StartRequest::new(
            &spec,
            &settings(None, RuntimeClass::Gvisor),
            "x",
        ))
        .unwrap_or_default();
        assert_eq!(body["command"], serde_json::Value::Null);
    }
}
