//! In-memory fakes of the plugin's imports, for native tests of the service.
//!
//! - [`MemStore`]: the storage contract (ordered tables, atomic commits with
//!   preconditions), with injectable backend failures.
//! - [`FakeRuntimeApi`]: the runtime API contract behind the `http` port, with
//!   raw JSON runtimes (so any field can be missing or malformed), a request log
//!   and one-shot faults.
//! - [`FakeEnv`]: a settable clock, predictable randomness and captured logs.

mod agents;
mod env;
mod runtime_api;
mod store;

pub use agents::FakeAgents;
pub use env::FakeEnv;
pub use runtime_api::{FakeRuntimeApi, Fault};
pub use store::MemStore;

use std::cell::{Cell, RefCell};

use crate::model::{RuntimeClass, SandboxSpec, Settings};
use crate::ports::{BatchId, Http, HttpError, Request, Response};
use crate::service::Service;

pub const RUNTIME_URL: &str = "http://runtime.test";

pub fn spec(id: &str) -> SandboxSpec {
    SandboxSpec {
        id: id.into(),
        command: Some(vec![
            "/usr/local/bin/openhands-agent-server".into(),
            "--port".into(),
            "60000".into(),
        ]),
        initial_env: vec![("LOG_JSON".into(), "true".into())],
        working_dir: "/workspace/project".into(),
        created_at: "2026-01-01T00:00:00.000000Z".into(),
    }
}

pub fn settings() -> Settings {
    Settings {
        runtime_api_url: RUNTIME_URL.into(),
        web_url: None,
        resource_factor: 1,
        runtime_class: RuntimeClass::Gvisor,
        start_sandbox_timeout_secs: 120,
        max_num_sandboxes: 10,
        specs: vec![spec("image:default"), spec("image:other")],
        agent_request_timeout_ms: 10_000,
        spec_policies: Vec::new(),
        default_policy: Default::default(),
        teardown_grace_secs: 30,
        history_retention_secs: 604_800,
        warm_pools: Vec::new(),
    }
}

/// A store, a runtime API, agent servers, callback receivers and an
/// environment, shared by every call of a test.
pub struct World {
    pub store: MemStore,
    pub runtime: FakeRuntimeApi,
    pub agents: FakeAgents,
    /// Callback receivers (`http://hooks.test/...`): every POST received.
    pub hooks: RefCell<Vec<Request>>,
    /// The status receivers answer.
    pub hook_status: Cell<u16>,
    open_batches: RefCell<std::collections::BTreeMap<BatchId, Vec<Result<Response, HttpError>>>>,
    pub env: FakeEnv,
    pub settings: Settings,
}

pub const HOOKS_URL: &str = "http://hooks.test";

impl Http for World {
    fn send(&self, request: Request) -> Result<Response, HttpError> {
        if request.url.starts_with(HOOKS_URL) {
            self.hooks.borrow_mut().push(request);
            return Ok(Response::new(self.hook_status.get(), Vec::new()));
        }
        if let Some(answer) = self.agents.handle(&request) {
            return answer;
        }
        self.runtime.send(request)
    }

    fn send_batch(&self, requests: Vec<Request>) -> Vec<Result<Response, HttpError>> {
        requests.into_iter().map(|r| self.send(r)).collect()
    }

    /// Answers at once; kept until finished, as the host keeps a batch's task.
    fn start_batch(&self, requests: Vec<Request>) -> Result<BatchId, HttpError> {
        let answers = self.send_batch(requests);
        let mut open = self.open_batches.borrow_mut();
        let id = open.keys().next_back().map_or(0, |k| k + 1);
        open.insert(id, answers);
        Ok(id)
    }

    fn finish_batch(&self, batch: BatchId) -> Result<Vec<Result<Response, HttpError>>, HttpError> {
        self.open_batches
            .borrow_mut()
            .remove(&batch)
            .ok_or_else(|| HttpError::InvalidRequest(format!("no open batch {batch}")))
    }
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

impl World {
    pub fn new() -> Self {
        World {
            store: MemStore::default(),
            runtime: FakeRuntimeApi::new(RUNTIME_URL),
            agents: FakeAgents::default(),
            hooks: RefCell::new(Vec::new()),
            hook_status: Cell::new(200),
            open_batches: RefCell::new(std::collections::BTreeMap::new()),
            env: FakeEnv::default(),
            settings: settings(),
        }
    }

    /// The service as `user` sees it (none: admin / single user).
    pub fn as_user(&self, user: Option<&str>) -> Service<'_> {
        Service {
            store: &self.store,
            http: self,
            env: &self.env,
            settings: &self.settings,
            caller: user.map(str::to_owned),
        }
    }

    pub fn alice(&self) -> Service<'_> {
        self.as_user(Some("alice"))
    }

    pub fn bob(&self) -> Service<'_> {
        self.as_user(Some("bob"))
    }

    pub fn admin(&self) -> Service<'_> {
        self.as_user(None)
    }
}
