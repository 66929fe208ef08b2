//! The HTTP API: hyper on a TCP listener, a small router, and the handlers.
//!
//! Every request is authenticated (except `/healthz`), routed, and answered with
//! JSON. Handlers parse and shape; the plugin decides. A malformed request gets a
//! 4xx with a `detail` that says what is wrong; nothing a caller sends reaches a
//! panic.

mod admin;
mod auth;
mod body;
mod callbacks;
mod conversations;
mod error;
mod json;
mod params;
mod sandboxes;
mod specs;
mod stream;
mod webhooks;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use wasmtime::Store;

pub use auth::Authenticator;
use auth::Caller;
pub use error::ApiError;
use params::Query;
use sandboxes::Action;

use crate::bindings::Plugin;
use crate::bindings::types::Error as PluginError;
use crate::egress::EgressPolicy;
use crate::host_key::HostKey;
use crate::imports::HostState;
use crate::plugin::PluginHost;
use crate::sync::{Changes, Poller, Reconciler};
use body::Body;

/// What every request handler shares.
pub struct AppState {
    pub plugin: Arc<PluginHost>,
    pub auth: Authenticator,
    /// Wakes event streams and the delivery worker after webhooks store events.
    pub changes: Arc<Changes>,
    /// Derives the secret shown when an event callback is created.
    pub host_key: HostKey,
    /// Runs poll cycles, on schedule or on an admin's request.
    pub poller: Arc<Poller>,
    /// Runs reconciliation passes, on schedule or on an admin's request.
    pub reconciler: Arc<Reconciler>,
    /// Learns the origins of the event callbacks users register.
    pub egress: Arc<EgressPolicy>,
    /// Whether the plugin file is watched for changes.
    pub watching: bool,
}

/// One plugin call for `caller`, with both kinds of failure turned into API
/// errors.
async fn call<R, F, Fut>(state: &AppState, caller: &Caller, f: F) -> Result<R, ApiError>
where
    F: FnOnce(Plugin, Store<HostState>) -> Fut,
    Fut: Future<Output = wasmtime::Result<Result<R, PluginError>>>,
{
    Ok(state.plugin.call(caller.user_id(), f).await??)
}

/// Serve until `shutdown` resolves, then let requests in flight finish (for up
/// to `grace`).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let service = service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(handle(state, req, peer).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .keep_alive(true)
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => tracing::warn!("requests still running after {grace:?}; stopping anyway"),
    }
}

async fn handle(state: Arc<AppState>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = match route(state, req).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    tracing::debug!(%peer, %method, %path, status = response.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
    response
}

/// Path segments, percent-decoded; one trailing slash is ignored.
fn segments(path: &str) -> Option<Vec<String>> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    trimmed
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned())
        })
        .collect()
}

async fn route(state: Arc<AppState>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let not_found = || ApiError::not_found("Not Found");
    let segs = segments(req.uri().path()).ok_or_else(not_found)?;
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let method = req.method().clone();

    if segs == ["healthz"] {
        return match method {
            Method::GET | Method::HEAD => Ok(health(&state)),
            _ => Err(method_not_allowed()),
        };
    }
    if let ["admin", rest @ ..] = segs.as_slice() {
        let caller = state.auth.authenticate(req.headers())?;
        if caller != Caller::All {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "admin routes need an admin key",
            ));
        }
        return match (rest, &method) {
            (["sync", "poll"], &Method::POST) => admin::poll(&state).await,
            (["reconcile"], &Method::POST) => admin::reconcile(&state).await,
            (["plugin"], &Method::GET) => Ok(admin::plugin(&state)),
            (["plugin", "reload"], &Method::POST) => admin::reload(&state).await,
            (["sync", "poll"] | ["plugin"] | ["plugin", "reload"], _) => Err(method_not_allowed()),
            _ => Err(not_found()),
        };
    }
    let ["api", "v1", rest @ ..] = segs.as_slice() else {
        return Err(not_found());
    };
    // Agent servers authenticate with their sandbox's session key, not as users.
    match (rest, &method) {
        (["webhooks", "conversations"], &Method::POST) => {
            return webhooks::conversation(&state, req).await;
        }
        (["webhooks", "events", id], &Method::POST) => {
            return webhooks::events(&state, (*id).to_owned(), req).await;
        }
        (["webhooks", "conversations"] | ["webhooks", "events", _], _) => {
            return Err(method_not_allowed());
        }
        _ => {}
    }
    let query = Query::parse(req.uri().query());
    // Authenticate before anything else: an unauthenticated caller learns only
    // that it must authenticate, not which routes or ids exist.
    let caller = state.auth.authenticate(req.headers())?;
    let st = &*state;
    match (rest, &method) {
        (["sandboxes", "search"], &Method::GET) => sandboxes::search(st, &caller, &query).await,
        (["sandboxes"], &Method::GET) => sandboxes::batch_get(st, &caller, &query).await,
        (["sandboxes"], &Method::POST) => sandboxes::start(st, &caller, &query).await,
        (["sandboxes", id], &Method::GET) => sandboxes::get(st, &caller, (*id).to_owned()).await,
        (["sandboxes", id], &Method::DELETE) => {
            sandboxes::act(st, &caller, (*id).to_owned(), Action::Delete).await
        }
        (["sandboxes", id, "pause"], &Method::POST) => {
            sandboxes::act(st, &caller, (*id).to_owned(), Action::Pause).await
        }
        (["sandboxes", id, "resume"], &Method::POST) => {
            sandboxes::act(st, &caller, (*id).to_owned(), Action::Resume).await
        }
        (["sandbox-specs", "search"], &Method::GET) => specs::search(st, &caller, &query).await,
        (["sandbox-specs"], &Method::GET) => specs::batch_get(st, &caller, &query).await,
        (["conversations", "search"], &Method::GET) => {
            conversations::search(st, &caller, &query).await
        }
        (["conversations", id], &Method::GET) => {
            conversations::get(st, &caller, (*id).to_owned()).await
        }
        (["conversations", id, "events", "search"], &Method::GET) => {
            conversations::search_events(st, &caller, (*id).to_owned(), &query).await
        }
        (["conversations", id, "events", "stream"], &Method::GET) => {
            let id = (*id).to_owned();
            stream::stream(state.clone(), caller, id, &req).await
        }
        (["event-callbacks"], &Method::POST) => callbacks::create(st, &caller, req).await,
        (["event-callbacks"], &Method::GET) => callbacks::list(st, &caller).await,
        (["event-callbacks", id], &Method::GET) => {
            callbacks::get(st, &caller, (*id).to_owned()).await
        }
        (["event-callbacks", id], &Method::DELETE) => {
            callbacks::delete(st, &caller, (*id).to_owned()).await
        }
        (["event-callbacks", id, "deliveries"], &Method::GET) => {
            callbacks::deliveries(st, &caller, (*id).to_owned(), &query).await
        }
        (
            ["sandboxes", "search"]
            | ["sandboxes"]
            | ["sandboxes", _]
            | ["sandboxes", _, "pause" | "resume"]
            | ["sandbox-specs", "search"]
            | ["sandbox-specs"]
            | ["conversations", "search"]
            | ["conversations", _]
            | ["conversations", _, "events", "search" | "stream"]
            | ["event-callbacks"]
            | ["event-callbacks", _]
            | ["event-callbacks", _, "deliveries"],
            _,
        ) => Err(method_not_allowed()),
        _ => Err(not_found()),
    }
}

fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

fn health(state: &AppState) -> Response<Body> {
    let plugin = state.plugin.current();
    json::ok(&serde_json::json!({
        "status": "ok",
        "plugin_version": &*plugin.plugin_version,
        "contract_version": plugin.contract_version,
        "plugin_sha256": plugin.sha256,
        "plugin_loaded_at": chrono::DateTime::<chrono::Utc>::from(plugin.loaded_at)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn segments_are_decoded_and_a_trailing_slash_ignored() {
        assert_eq!(
            super::segments("/api/v1/sandboxes/"),
            Some(vec!["api".into(), "v1".into(), "sandboxes".into()])
        );
        assert_eq!(super::segments("/a%20b"), Some(vec!["a b".into()]));
        assert_eq!(super::segments("/%FF"), None);
    }
}
