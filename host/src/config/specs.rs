//! `[[specs]]`: the sandbox specs the API offers (image id, command, working
//! directory, environment) and how the local runtime tells one is ready. None
//! configured: one default spec, for the remote or the local runtime.

use indexmap::IndexMap;
use serde::Deserialize;

use super::lifecycle::{self, PolicyFile, PolicyOverrides};
use super::{choice, whole};

/// The spec used when the operator configures none: the OpenHands agent server
/// image, as upstream ships it.
const SPEC_ID: &str = "ghcr.io/openhands/agent-server:latest-python";
const SPEC_COMMAND: [&str; 3] = ["/usr/local/bin/openhands-agent-server", "--port", "60000"];
const SPEC_WORKING_DIR: &str = "/workspace/project";

/// The spec of the embedded local runtime when none is configured: a tiny HTTP
/// server from Python's standard library, so a fresh clone runs a sandbox with
/// nothing but `python3`. It answers `/alive` like an agent server, and checks the
/// session key on `/api/…` like one.
const LOCAL_SPEC_ID: &str = "local/python-http";
const LOCAL_SPEC_SCRIPT: &str = r#"import http.server, json, os, sys
KEY = os.environ.get("SESSION_API_KEY", "")
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/api/") and self.headers.get("X-Session-API-Key") != KEY:
            status, body = 401, {"detail": "Unauthorized"}
        else:
            status, body = 200, {"status": "ok", "path": self.path, "sandbox": os.getcwd()}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

/// What a local runtime's readiness probe asks for by default: the agent
/// server's unauthenticated liveness route.
const PROBE_PATH: &str = "/alive";

/// One `[[specs]]` entry as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    pub id: String,
    pub command: Option<Vec<String>>,
    pub working_dir: Option<String>,
    #[serde(default)]
    pub initial_env: IndexMap<String, String>,
    /// Local runtime readiness: `http` (GET `probe_path`) or `tcp`.
    pub probe: Option<String>,
    pub probe_path: Option<String>,
    /// Seconds; this spec's policy (see `lifecycle`).
    pub idle_pause: Option<i64>,
    pub max_running: Option<i64>,
    pub delete_paused_after: Option<i64>,
    /// Sandboxes kept started ahead (the spec's warm pool).
    pub warm: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecConfig {
    /// Not empty, and unique among the specs.
    pub id: String,
    pub command: Option<Vec<String>>,
    pub working_dir: String,
    /// In the order written.
    pub initial_env: Vec<(String, String)>,
    /// How the local runtime tells it is ready.
    pub probe: Probe,
    /// What this spec changes of the `[lifecycle]` policy.
    pub lifecycle: PolicyOverrides,
    /// How many sandboxes of this spec are kept started ahead of any request
    /// (its warm pool), at most [`MAX_WARM`]; 0 is none.
    pub warm: u32,
}

/// The largest warm pool of one spec: each warm sandbox is a running process
/// (or container) nobody uses yet.
pub const MAX_WARM: i64 = 64;

/// How the local runtime tells that a sandbox is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `GET http://127.0.0.1:{port}{path}` answers (any status below 500). The
    /// path starts with `/`.
    Http(String),
    /// A TCP connection to the port succeeds.
    Tcp,
}

/// What `probe` may say; `http` also takes `probe_path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ProbeKind {
    /// The default: an agent server answers its liveness route.
    #[default]
    Http,
    Tcp,
}

/// The agent server's liveness route: what a spec probes unless it says
/// otherwise, and what a sandbox whose spec is no longer configured is probed
/// with.
impl Default for Probe {
    fn default() -> Self {
        Probe::Http(PROBE_PATH.into())
    }
}

/// `local`: the embedded local runtime is used (it decides the default spec).
pub(super) fn validate(
    raw: Vec<SpecFile>,
    local: bool,
    err: &mut impl FnMut(String),
) -> Vec<SpecConfig> {
    if raw.is_empty() {
        let (id, command) = if local {
            (
                LOCAL_SPEC_ID,
                vec![
                    "python3".into(),
                    "-c".into(),
                    LOCAL_SPEC_SCRIPT.into(),
                    "{port}".into(),
                ],
            )
        } else {
            (
                SPEC_ID,
                SPEC_COMMAND.iter().map(|s| (*s).to_owned()).collect(),
            )
        };
        return vec![SpecConfig {
            id: id.into(),
            command: Some(command),
            working_dir: SPEC_WORKING_DIR.into(),
            initial_env: Vec::new(),
            probe: Probe::default(),
            lifecycle: PolicyOverrides::default(),
            warm: 0,
        }];
    }
    let mut specs: Vec<SpecConfig> = Vec::with_capacity(raw.len());
    for (i, s) in raw.into_iter().enumerate() {
        if s.id.trim().is_empty() {
            err(format!("specs[{i}].id: must not be empty"));
        } else if specs.iter().any(|other| other.id == s.id) {
            err(format!("specs[{i}].id: '{}' is configured twice", s.id));
        }
        let probe = match choice(&format!("specs[{i}].probe"), s.probe.as_deref(), err) {
            Some(ProbeKind::Http) => {
                let path = s.probe_path.unwrap_or_else(|| PROBE_PATH.into());
                if !path.starts_with('/') {
                    err(format!(
                        "specs[{i}].probe_path: '{path}' must start with '/'"
                    ));
                }
                Probe::Http(path)
            }
            // Not one of them (reported): no probe path to check either.
            Some(ProbeKind::Tcp) | None => Probe::Tcp,
        };
        specs.push(SpecConfig {
            id: s.id,
            command: s.command,
            working_dir: s.working_dir.unwrap_or_else(|| SPEC_WORKING_DIR.into()),
            initial_env: s.initial_env.into_iter().collect(),
            probe,
            lifecycle: lifecycle::overrides(
                &format!("specs[{i}]"),
                &PolicyFile {
                    idle_pause: s.idle_pause,
                    max_running: s.max_running,
                    delete_paused_after: s.delete_paused_after,
                },
                err,
            ),
            warm: whole(
                &format!("specs[{i}].warm"),
                s.warm,
                0..=MAX_WARM,
                " sandboxes",
                err,
            )
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        });
    }
    specs
}
