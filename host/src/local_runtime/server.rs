//! The local runtime's HTTP server: the runtime API contract (behind its API
//! key) and the proxy to sandboxes (behind each agent server's own session key).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use super::proxy::{self, RtBody, full};
use super::record::Status;
use super::sandbox::{self, StartBody, StartError};
use super::{Inner, lock};

/// Largest API request body read.
const MAX_BODY: usize = 1 << 20;

pub async fn serve(listener: TcpListener, inner: Arc<Inner>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let inner = inner.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let inner = inner.clone();
                async move { Ok::<_, Infallible>(handle(&inner, req).await) }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

fn detail(status: StatusCode, message: impl Into<String>) -> Response<RtBody> {
    full(status, json!({ "detail": message.into() }).to_string())
}

fn ok(value: &Value) -> Response<RtBody> {
    full(StatusCode::OK, value.to_string())
}

async fn handle(inner: &Arc<Inner>, req: Request<Incoming>) -> Response<RtBody> {
    let path = req.uri().path().to_owned();
    let is_api = matches!(
        (req.method(), path.as_str()),
        (&Method::POST, "/start" | "/stop" | "/pause" | "/resume") | (&Method::GET, "/list")
    ) || path.starts_with("/sessions/");
    if is_api {
        return api(inner, req, &path).await;
    }
    // `/{runtime_id}[/vscode|/work-1|/work-2]/rest…` → that sandbox's port.
    let trimmed = path.trim_start_matches('/');
    let (runtime_id, rest) = trimmed
        .split_once('/')
        .map_or((trimmed, ""), |(id, rest)| (id, rest));
    let Some(sandbox) = lock(&inner.sandboxes).get(runtime_id).cloned() else {
        return detail(StatusCode::NOT_FOUND, "Not Found");
    };
    if let Err(answer) = wake_if_paused(inner, &sandbox).await {
        return answer;
    }
    let ports = sandbox.record().ports;
    let (port, rest) = match rest
        .split_once('/')
        .map_or((rest, ""), |(first, r)| (first, r))
    {
        ("vscode", r) => (ports.vscode, r),
        ("work-1", r) => (ports.worker_1, r),
        ("work-2", r) => (ports.worker_2, r),
        _ => (ports.agent, rest),
    };
    let mut target = format!("/{rest}");
    if let Some(q) = req.uri().query() {
        target.push('?');
        target.push_str(q);
    }
    proxy::forward(req, port, &target).await
}

/// With wake on request: a paused sandbox is resumed through the service and
/// the request waits until it runs, within the readiness timeout. The answer
/// to send instead when it cannot be woken or does not run in time.
async fn wake_if_paused(inner: &Inner, sandbox: &sandbox::Sandbox) -> Result<(), Response<RtBody>> {
    let Some(waker) = inner.waker.get() else {
        return Ok(());
    };
    if sandbox.record().status != Status::Paused {
        return Ok(());
    }
    let session_id = sandbox.record().session_id;
    if let Err(e) = waker(session_id.clone()).await {
        return Err(detail(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("sandbox '{session_id}' is paused and could not be woken: {e}"),
        ));
    }
    let deadline = tokio::time::Instant::now() + inner.config.ready_timeout;
    loop {
        match sandbox.record().status {
            Status::Running => return Ok(()),
            Status::Paused | Status::Starting if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            status => {
                return Err(detail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "sandbox '{session_id}' was woken but is {} after {:?}",
                        status.as_str(),
                        inner.config.ready_timeout
                    ),
                ));
            }
        }
    }
}

async fn api(inner: &Arc<Inner>, req: Request<Incoming>, path: &str) -> Response<RtBody> {
    let authorized = req
        .headers()
        .get("x-api-key")
        .is_some_and(|k| bool::from(k.as_bytes().ct_eq(inner.api_key.as_bytes())));
    if !authorized {
        return detail(StatusCode::UNAUTHORIZED, "missing or wrong X-API-Key");
    }
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or("").to_owned();
    if method == Method::GET {
        return read(inner, path, &query);
    }
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => return detail(StatusCode::BAD_REQUEST, format!("unreadable body: {e}")),
    };
    if path == "/start" {
        let body: StartBody = match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                return detail(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("invalid /start body: {e}"),
                );
            }
        };
        return match sandbox::start(inner, body).await {
            Ok(sb) => ok(&sb.runtime_json(inner)),
            Err(StartError::Invalid(m)) => detail(StatusCode::UNPROCESSABLE_ENTITY, m),
            Err(StartError::Conflict(m)) => detail(StatusCode::CONFLICT, m),
            Err(StartError::Internal(m)) => detail(StatusCode::INTERNAL_SERVER_ERROR, m),
        };
    }
    let runtime_id = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["runtime_id"].as_str().map(str::to_owned));
    let Some(runtime_id) = runtime_id else {
        return detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the body must be {\"runtime_id\": string}",
        );
    };
    let Some(sb) = lock(&inner.sandboxes).get(&runtime_id).cloned() else {
        return detail(StatusCode::NOT_FOUND, format!("no runtime '{runtime_id}'"));
    };
    let outcome = match path {
        "/stop" => {
            sandbox::stop(inner, &sb, true).await;
            return ok(&json!({ "runtime_id": runtime_id, "status": "stopped" }));
        }
        "/pause" => sandbox::pause(inner, &sb).await,
        _ => sandbox::resume(inner, &sb).await,
    };
    match outcome {
        Ok(()) => ok(&sb.runtime_json(inner)),
        Err(m) => detail(StatusCode::CONFLICT, m),
    }
}

fn read(inner: &Arc<Inner>, path: &str, query: &str) -> Response<RtBody> {
    let all: Vec<_> = lock(&inner.sandboxes).values().cloned().collect();
    let by_session = |id: &str| all.iter().find(|s| s.session_id == id).cloned();
    if path == "/list" {
        let runtimes: Vec<Value> = all
            .iter()
            .filter(|s| s.is_live())
            .map(|s| s.runtime_json(inner))
            .collect();
        return ok(&json!({ "total": runtimes.len(), "runtimes": runtimes }));
    }
    if path == "/sessions/batch" {
        let found: Vec<Value> = form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k == "ids")
            .filter_map(|(_, id)| by_session(&id))
            .map(|s| s.runtime_json(inner))
            .collect();
        return ok(&Value::Array(found));
    }
    let id = path.trim_start_matches("/sessions/");
    let id = percent_encoding::percent_decode_str(id).decode_utf8_lossy();
    match by_session(&id) {
        Some(s) => ok(&s.runtime_json(inner)),
        None => detail(
            StatusCode::NOT_FOUND,
            format!("no runtime for session '{id}'"),
        ),
    }
}
