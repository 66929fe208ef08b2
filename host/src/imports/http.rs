//! `http`: outbound requests on one shared reqwest client.
//!
//! The host decides what leaves the process: every request counts against the
//! call's budget, passes the egress policy ([`crate::egress`]), is bounded by a
//! deadline and a response size, and gets the runtime API key only when it
//! names that credential *and* goes to the configured runtime API. The plugin
//! never holds the key. Runtime API answers teach the policy where the agent
//! servers are.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::HostState;
use crate::bindings::http::{Credential, Host, HttpError, Method, Request, Response};
use crate::config::{Config, Secret};
use crate::egress::{self, EgressPolicy};
use crate::host_key::HostKey;
use crate::local_runtime::Endpoint;

/// Most requests one `send-batch` accepts.
const MAX_BATCH: usize = 10_000;

#[derive(Clone)]
pub struct HttpImport(Arc<Inner>);

struct Inner {
    client: reqwest::Client,
    /// The runtime API base, normalised, with a trailing slash.
    runtime_base: String,
    runtime_key: Secret,
    policy: Arc<EgressPolicy>,
    host_key: HostKey,
    timeout: Duration,
    max_response_bytes: usize,
    batch_concurrency: usize,
}

impl HttpImport {
    pub fn new(
        config: &Config,
        runtime: &Endpoint,
        host_key: HostKey,
        policy: Arc<EgressPolicy>,
    ) -> anyhow::Result<HttpImport> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.http.connect_timeout)
            .timeout(config.http.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(EgressPolicy::resolver()))
            .user_agent(concat!("sandboxd/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let runtime_base = url::Url::parse(&format!("{}/", runtime.url))?.to_string();
        Ok(HttpImport(Arc::new(Inner {
            client,
            runtime_base,
            runtime_key: Secret::new(runtime.api_key.clone()),
            policy,
            host_key,
            timeout: config.http.timeout,
            max_response_bytes: config.http.max_response_bytes,
            batch_concurrency: config.sync.concurrency,
        })))
    }

    pub async fn send(&self, request: Request) -> Result<Response, HttpError> {
        let runtime_op = matches!(request.credential, Credential::RuntimeApi)
            .then(|| runtime_op(request.method, &request.url, &self.0.runtime_base));
        let started = std::time::Instant::now();
        let result = self.send_inner(request).await;
        if let Some(op) = runtime_op {
            crate::metrics::runtime_request(op, outcome(&result), started.elapsed());
        }
        result
    }

    async fn send_inner(&self, request: Request) -> Result<Response, HttpError> {
        let inner = &self.0;
        let url = url::Url::parse(&request.url).map_err(|e| {
            HttpError::InvalidRequest(format!("invalid URL '{}': {e}", request.url))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HttpError::InvalidRequest(format!(
                "unsupported scheme in '{url}'"
            )));
        }
        inner
            .policy
            .check(&url)
            .await
            .map_err(|e| HttpError::Denied(e.to_string()))?;

        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        };
        let timeout = request
            .timeout_ms
            .map(|ms| Duration::from_millis(u64::from(ms)).min(inner.timeout))
            .unwrap_or(inner.timeout);
        let mut builder = inner.client.request(method, url.clone()).timeout(timeout);
        for (name, value) in &request.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HttpError::InvalidRequest(format!("invalid header name '{name}'")))?;
            let value = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
                HttpError::InvalidRequest(format!("invalid value for header '{name}'"))
            })?;
            builder = builder.header(name, value);
        }
        let to_runtime = matches!(request.credential, Credential::RuntimeApi);
        match &request.credential {
            Credential::None => {}
            Credential::RuntimeApi => {
                if !url.as_str().starts_with(&inner.runtime_base) {
                    return Err(HttpError::Denied(format!(
                        "the runtime API credential is only sent to the runtime API, not to {}",
                        egress::origin_of(&url)
                    )));
                }
                builder = builder.header("x-api-key", inner.runtime_key.expose());
            }
            Credential::CallbackSignature(id) => {
                let body = request.body.as_deref().unwrap_or_default();
                builder =
                    builder.header("x-sandboxd-signature", inner.host_key.signature(id, body));
            }
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }

        let mut response = builder.send().await.map_err(transport_error)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > inner.max_response_bytes {
                return Err(HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        if to_runtime && (200..300).contains(&status) {
            inner.policy.learn_from_runtime(&body);
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// All requests, at most `limit`'s permits in flight, answers in order.
    pub async fn send_batch(
        &self,
        requests: Vec<Request>,
        limit: Arc<Semaphore>,
    ) -> Vec<Result<Response, HttpError>> {
        if requests.len() > MAX_BATCH {
            let refusal = format!(
                "a batch of {} requests exceeds the limit of {MAX_BATCH}",
                requests.len()
            );
            return requests
                .iter()
                .map(|_| Err(HttpError::Denied(refusal.clone())))
                .collect();
        }
        futures::future::join_all(requests.into_iter().map(|r| {
            let limit = limit.clone();
            async move {
                // The semaphore is never closed.
                let _permit = limit.acquire_owned().await.ok();
                self.send(r).await
            }
        }))
        .await
    }

    /// A fresh bound on in-flight requests, for one plugin call's batches.
    pub fn batch_limit(&self) -> Arc<Semaphore> {
        Arc::new(Semaphore::new(self.0.batch_concurrency))
    }
}

/// The runtime API operation a request is (`op` of the runtime metrics):
/// one of a fixed few, so the label stays bounded.
fn runtime_op(method: Method, url: &str, base: &str) -> &'static str {
    let path = url.strip_prefix(base).unwrap_or(url);
    let path = path.split(['?', '#']).next().unwrap_or(path);
    match (method, path) {
        (Method::Post, "start") => "start",
        (Method::Post, "stop") => "stop",
        (Method::Post, "pause") => "pause",
        (Method::Post, "resume") => "resume",
        (Method::Get, "list") => "list",
        (Method::Get, "sessions/batch") => "batch",
        (Method::Get, p) if p.starts_with("sessions/") => "get",
        _ => "other",
    }
}

/// The `outcome` label of a runtime request.
fn outcome(result: &Result<Response, HttpError>) -> &'static str {
    match result {
        Ok(r) if (200..300).contains(&r.status) => "ok",
        Ok(r) if r.status == 404 => "not_found",
        Ok(r) if r.status < 500 => "client_error",
        Ok(_) => "server_error",
        Err(HttpError::Timeout) => "timeout",
        Err(HttpError::Connect(_)) => "connect_error",
        Err(HttpError::Denied(_)) => "denied",
        Err(HttpError::InvalidRequest(_)) => "invalid_request",
        Err(HttpError::TooLarge) => "too_large",
        Err(HttpError::Transport(_)) => "transport_error",
    }
}

/// Batches a plugin call started and has not finished yet.
#[derive(Default)]
pub struct OpenBatches {
    next: u32,
    open: HashMap<u32, JoinHandle<Vec<Result<Response, HttpError>>>>,
    /// Shared by every batch of the call, so that the call as a whole stays
    /// within the configured concurrency.
    limit: Option<Arc<Semaphore>>,
}

/// Most batches open at once in one call.
const MAX_OPEN_BATCHES: usize = 8;

impl OpenBatches {
    fn limit(&mut self, http: &HttpImport) -> Arc<Semaphore> {
        self.limit.get_or_insert_with(|| http.batch_limit()).clone()
    }
}

impl Drop for OpenBatches {
    fn drop(&mut self) {
        // The call is over: nobody will read these answers.
        for (_, task) in self.open.drain() {
            task.abort();
        }
    }
}

/// reqwest's error, as the plugin's `http-error`. The text never carries a
/// header value, so the key cannot leak through it.
fn transport_error(e: reqwest::Error) -> HttpError {
    let text = error_chain(&e);
    if e.is_timeout() {
        HttpError::Timeout
    } else if e.is_connect() {
        HttpError::Connect(text)
    } else if e.is_builder() {
        HttpError::InvalidRequest(text)
    } else {
        HttpError::Transport(text)
    }
}

/// The error and its causes in one line (reqwest's own text is often just
/// "error sending request").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl Host for HostState {
    fn send(
        &mut self,
        request: Request,
    ) -> impl Future<Output = wasmtime::Result<Result<Response, HttpError>>> + Send {
        let within_budget = self.meter.requests(1);
        let http = self.services.http.clone();
        async move {
            within_budget?;
            Ok(http.send(request).await)
        }
    }

    fn send_batch(
        &mut self,
        requests: Vec<Request>,
    ) -> impl Future<Output = wasmtime::Result<Vec<Result<Response, HttpError>>>> + Send {
        let within_budget = self.meter.requests(requests.len());
        let http = self.services.http.clone();
        let limit = self.batches.limit(&http);
        async move {
            within_budget?;
            Ok(http.send_batch(requests, limit).await)
        }
    }

    fn start_batch(&mut self, requests: Vec<Request>) -> wasmtime::Result<Result<u32, HttpError>> {
        self.meter.requests(requests.len())?;
        if self.batches.open.len() >= MAX_OPEN_BATCHES {
            return Ok(Err(HttpError::Denied(format!(
                "at most {MAX_OPEN_BATCHES} batches may be open at once"
            ))));
        }
        let http = self.services.http.clone();
        let limit = self.batches.limit(&http);
        let task = tokio::spawn(async move { http.send_batch(requests, limit).await });
        let id = self.batches.next;
        self.batches.next = self.batches.next.wrapping_add(1);
        self.batches.open.insert(id, task);
        Ok(Ok(id))
    }

    fn finish_batch(
        &mut self,
        batch: u32,
    ) -> impl Future<Output = Result<Vec<Result<Response, HttpError>>, HttpError>> + Send {
        let task = self.batches.open.remove(&batch);
        async move {
            let task =
                task.ok_or_else(|| HttpError::InvalidRequest(format!("no open batch {batch}")))?;
            task.await
                .map_err(|e| HttpError::Transport(format!("the batch was lost: {e}")))
        }
    }
}
