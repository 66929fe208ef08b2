use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use crate::ports::{Credential, Http, HttpError, Method, Request, Response};

/// A failure the fake produces for the next request whose `METHOD /path` starts
/// with the key it was registered under.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status and body without acting.
    Status(u16, &'static str),
    /// Answer 200 with this raw body without acting.
    Body(&'static str),
    /// Answer 429 with `Retry-After: <seconds>` without acting.
    TooMany(u64),
    /// Fail in transport without acting.
    Transport(HttpError),
    /// Act, then lose the answer (the request was delivered).
    ActThenFail(HttpError),
}

/// The runtime API contract, in memory, behind the `http` port.
pub struct FakeRuntimeApi {
    base: String,
    /// Raw runtime objects by session id.
    pub runtimes: RefCell<BTreeMap<String, Value>>,
    pub start_bodies: RefCell<HashMap<String, Value>>,
    pub requests: RefCell<Vec<Request>>,
    faults: RefCell<Vec<(String, Fault)>>,
    next_id: Cell<u64>,
    pub start_status: RefCell<String>,
    /// `{runtime_id}` is replaced.
    pub url_template: RefCell<String>,
    pub resume_returns_key: Cell<bool>,
    /// Refuse every connection.
    pub down: Cell<bool>,
}

impl FakeRuntimeApi {
    pub fn new(base: &str) -> Self {
        FakeRuntimeApi {
            base: base.to_owned(),
            runtimes: RefCell::new(BTreeMap::new()),
            start_bodies: RefCell::new(HashMap::new()),
            requests: RefCell::new(Vec::new()),
            faults: RefCell::new(Vec::new()),
            next_id: Cell::new(1),
            start_status: RefCell::new("running".into()),
            url_template: RefCell::new("https://sandbox.example/{runtime_id}".into()),
            resume_returns_key: Cell::new(true),
            down: Cell::new(false),
        }
    }

    pub fn fault(&self, key: &str, fault: Fault) {
        self.faults.borrow_mut().push((key.to_owned(), fault));
    }

    /// The same fault for the next `n` matching requests: enough to outlast the
    /// retries of a read.
    pub fn fault_times(&self, key: &str, fault: Fault, n: usize) {
        for _ in 0..n {
            self.fault(key, fault.clone());
        }
    }

    /// Requests whose `METHOD /path?query` starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.requests
            .borrow()
            .iter()
            .filter(|r| {
                format!("{} {}", r.method, r.url.trim_start_matches(&self.base)).starts_with(prefix)
            })
            .count()
    }

    pub fn clear_requests(&self) {
        self.requests.borrow_mut().clear();
    }

    pub fn runtime(&self, session_id: &str) -> Option<Value> {
        self.runtimes.borrow().get(session_id).cloned()
    }

    pub fn key_of(&self, session_id: &str) -> Option<String> {
        self.runtime(session_id)?
            .get("session_api_key")?
            .as_str()
            .map(str::to_owned)
    }

    pub fn set_field(&self, session_id: &str, key: &str, value: Value) {
        if let Some(Value::Object(rt)) = self.runtimes.borrow_mut().get_mut(session_id) {
            rt.insert(key.to_owned(), value);
        }
    }

    pub fn remove_field(&self, session_id: &str, key: &str) {
        if let Some(Value::Object(rt)) = self.runtimes.borrow_mut().get_mut(session_id) {
            rt.remove(key);
        }
    }

    pub fn set_status(&self, session_id: &str, status: &str) {
        self.set_field(session_id, "status", json!(status));
    }

    /// Make a runtime exist without a `/start`, e.g. one started elsewhere.
    pub fn insert(&self, session_id: &str, status: &str) -> String {
        let rt = self.new_runtime(session_id, status);
        let runtime_id = rt["runtime_id"].as_str().unwrap_or_default().to_owned();
        self.runtimes.borrow_mut().insert(session_id.to_owned(), rt);
        runtime_id
    }

    fn new_runtime(&self, session_id: &str, status: &str) -> Value {
        let n = self.next_id.get();
        self.next_id.set(n + 1);
        let runtime_id = format!("rt-{n}");
        let url = self
            .url_template
            .borrow()
            .replace("{runtime_id}", &runtime_id);
        json!({
            "runtime_id": runtime_id,
            "session_id": session_id,
            "url": url,
            "session_api_key": format!("key-{n}-secret"),
            "status": status,
            "pod_status": "ready",
            "restart_count": 0,
            "restart_reasons": [],
        })
    }

    fn by_runtime_id(&self, runtime_id: &str) -> Option<String> {
        self.runtimes
            .borrow()
            .iter()
            .find(|(_, rt)| rt.get("runtime_id").and_then(Value::as_str) == Some(runtime_id))
            .map(|(sid, _)| sid.clone())
    }

    fn act(&self, method: Method, path: &str, query: &str, body: Option<&[u8]>) -> Response {
        let body_json: Value = body
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let runtime_id = body_json
            .get("runtime_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match (method, path) {
            (Method::Post, "/start") => {
                let Some(sid) = body_json.get("session_id").and_then(Value::as_str) else {
                    return answer(400, json!({"detail": "session_id required"}));
                };
                if self.runtimes.borrow().contains_key(sid) {
                    return answer(409, json!({"detail": "exists"}));
                }
                let status = self.start_status.borrow().clone();
                let rt = self.new_runtime(sid, &status);
                self.runtimes
                    .borrow_mut()
                    .insert(sid.to_owned(), rt.clone());
                self.start_bodies
                    .borrow_mut()
                    .insert(sid.to_owned(), body_json.clone());
                answer(200, rt)
            }
            (Method::Post, "/stop") => match self.by_runtime_id(runtime_id) {
                Some(sid) => {
                    self.runtimes.borrow_mut().remove(&sid);
                    answer(200, json!({"status": "stopped"}))
                }
                None => answer(404, json!({"detail": "no runtime"})),
            },
            (Method::Post, "/pause") => match self.by_runtime_id(runtime_id) {
                Some(sid) => {
                    self.set_status(&sid, "paused");
                    answer(200, json!({"status": "paused"}))
                }
                None => answer(404, json!({"detail": "no runtime"})),
            },
            (Method::Post, "/resume") => match self.by_runtime_id(runtime_id) {
                Some(sid) => {
                    let n = self.next_id.get();
                    self.next_id.set(n + 1);
                    self.set_status(&sid, "running");
                    self.set_field(&sid, "session_api_key", json!(format!("key-{n}-rotated")));
                    let mut rt = self.runtime(&sid).unwrap_or(Value::Null);
                    if !self.resume_returns_key.get()
                        && let Value::Object(m) = &mut rt
                    {
                        m.remove("session_api_key");
                    }
                    answer(200, rt)
                }
                None => answer(404, json!({"detail": "no runtime"})),
            },
            (Method::Get, "/list") => {
                let runtimes: Vec<Value> = self
                    .runtimes
                    .borrow()
                    .values()
                    .filter(|rt| rt.get("status").and_then(Value::as_str) != Some("stopped"))
                    .cloned()
                    .collect();
                let total = runtimes.len();
                answer(200, json!({"runtimes": runtimes, "total": total}))
            }
            (Method::Get, "/sessions/batch") => {
                let runtimes = self.runtimes.borrow();
                let found: Vec<Value> = query
                    .split('&')
                    .filter_map(|pair| pair.strip_prefix("ids="))
                    .filter_map(|id| runtimes.get(id).cloned())
                    .collect();
                answer(200, Value::Array(found))
            }
            (Method::Get, p) if p.starts_with("/sessions/") => {
                match self.runtime(&p["/sessions/".len()..]) {
                    Some(rt) => answer(200, rt),
                    None => answer(404, json!({"detail": "not found"})),
                }
            }
            _ => answer(404, json!({"detail": "no route"})),
        }
    }
}

fn answer(status: u16, body: Value) -> Response {
    Response::new(status, body.to_string().into_bytes())
}

impl Http for FakeRuntimeApi {
    fn send(&self, request: Request) -> Result<Response, HttpError> {
        self.requests.borrow_mut().push(request.clone());
        let Some(rest) = request.url.strip_prefix(&self.base) else {
            return Err(HttpError::Connect(format!(
                "unknown host in {}",
                request.url
            )));
        };
        if request.credential != Credential::RuntimeApi {
            return Ok(answer(401, json!({"detail": "missing X-API-Key"})));
        }
        if self.down.get() {
            return Err(HttpError::Connect("connection refused".into()));
        }
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let call = format!("{} {path}", request.method);
        let fault = {
            let mut faults = self.faults.borrow_mut();
            let hit = faults
                .iter()
                .position(|(key, _)| call.starts_with(key.as_str()));
            hit.map(|i| faults.remove(i).1)
        };
        match fault {
            Some(Fault::Status(status, body)) => {
                Ok(Response::new(status, body.as_bytes().to_vec()))
            }
            Some(Fault::Body(body)) => Ok(Response::new(200, body.as_bytes().to_vec())),
            Some(Fault::TooMany(secs)) => {
                let mut response = Response::new(429, b"slow down".to_vec());
                response
                    .headers
                    .push(("retry-after".into(), secs.to_string()));
                Ok(response)
            }
            Some(Fault::Transport(e)) => Err(e),
            Some(Fault::ActThenFail(e)) => {
                self.act(request.method, path, query, request.body.as_deref());
                Err(e)
            }
            None => Ok(self.act(request.method, path, query, request.body.as_deref())),
        }
    }

    fn send_batch(&self, requests: Vec<Request>) -> Vec<Result<Response, HttpError>> {
        requests.into_iter().map(|r| self.send(r)).collect()
    }

    fn start_batch(&self, _: Vec<Request>) -> Result<crate::ports::BatchId, HttpError> {
        Err(HttpError::Denied(
            "the fake runtime API takes no batches".into(),
        ))
    }

    fn finish_batch(
        &self,
        _: crate::ports::BatchId,
    ) -> Result<Vec<Result<Response, HttpError>>, HttpError> {
        Err(HttpError::Denied(
            "the fake runtime API takes no batches".into(),
        ))
    }
}
