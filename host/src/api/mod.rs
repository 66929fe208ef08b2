//! The HTTP API: axum routes, documented once (OpenAPI), served on hyper.
//!
//! Every route is declared once, in [`routes`], from handlers annotated with
//! `#[utoipa::path]`: that one declaration both routes requests and writes the
//! OpenAPI document, so the two cannot disagree. Handlers parse and shape; the
//! plugin decides. Authentication is an extractor ([`auth::Caller`],
//! [`auth::Admin`]) that runs before the handler reads anything else, so an
//! unauthenticated caller learns only that it must authenticate. Bad input
//! gets a 4xx whose `detail` says what is wrong (see [`error`] for the one
//! table from failure to status); the router answers unknown paths with 404 and
//! known paths with the wrong method with 405, in the same JSON shape.

mod admin;
mod auth;
mod callbacks;
mod conversations;
mod doc;
mod error;
mod extract;
mod health;
mod json;
mod params;
mod sandboxes;
mod specs;
mod stream;
mod webhooks;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::{Extension, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::Authenticator;
pub use error::ApiError;

use crate::cluster::Cluster;
use crate::egress::EgressPolicy;
use crate::host_key::HostKey;
use crate::plugin::PluginHost;
use crate::storage::Store;
use crate::sync::{Changes, Lifecycle, Poller, Reconciler};

/// How long a client may take to send a request body: a slow sender holds a
/// connection, not the server.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to send a request's head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// Runs reconciliation passes, on schedule or on an admin's request; knows
    /// whether the first one has finished (readiness).
    pub reconciler: Arc<Reconciler>,
    /// Runs the lifecycle policy passes, on schedule or on an admin's request.
    pub lifecycle: Arc<Lifecycle>,
    /// Learns the origins of the event callbacks users register.
    pub egress: Arc<EgressPolicy>,
    /// The store, for the readiness probe.
    pub store: Store,
    /// The replicas on the store, and which share of the work is this one's.
    pub cluster: Arc<Cluster>,
    /// Whether the plugin file is watched for changes.
    pub watching: bool,
}

/// Every route of the API, once: the router and its OpenAPI document.
fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(doc::base())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(doc::openapi_json))
        .routes(routes!(sandboxes::search))
        .routes(routes!(sandboxes::batch_get, sandboxes::start))
        .routes(routes!(sandboxes::get, sandboxes::delete))
        .routes(routes!(sandboxes::pause))
        .routes(routes!(sandboxes::resume))
        .routes(routes!(sandboxes::history))
        .routes(routes!(specs::search))
        .routes(routes!(specs::batch_get))
        .routes(routes!(conversations::search))
        .routes(routes!(conversations::get))
        .routes(routes!(conversations::search_events))
        .routes(routes!(stream::stream))
        .routes(routes!(callbacks::create, callbacks::list))
        .routes(routes!(callbacks::get, callbacks::delete))
        .routes(routes!(callbacks::deliveries))
        .routes(routes!(webhooks::conversation))
        .routes(routes!(webhooks::events))
        .routes(routes!(admin::poll))
        .routes(routes!(admin::reconcile))
        .routes(routes!(admin::lifecycle_pass))
        .routes(routes!(admin::plugin))
        .routes(routes!(admin::reload))
        .routes(routes!(admin::replicas))
}

/// The API's router and the document it serves at `/openapi.json`.
pub fn app(
    state: Arc<AppState>,
    auth: &crate::config::AuthConfig,
) -> anyhow::Result<(Router, OpenApi)> {
    let (router, doc) = routes().split_for_parts();
    let doc = doc::finish(doc, auth);
    let router = router
        .route_layer(middleware::from_fn(matched_route))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(record))
        .layer(Extension(doc::Rendered::new(&doc)?))
        .layer(RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
        .layer(TraceLayer::new_for_http())
        .with_state(state);
    Ok((router, doc))
}

/// The route template a request matched, handed from inside the router to
/// [`record`] outside it.
#[derive(Clone)]
struct Route(MatchedPath);

async fn matched_route(path: MatchedPath, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    response.extensions_mut().insert(Route(path));
    response
}

/// `sandboxd_http_requests_total` and `sandboxd_http_request_duration_seconds`,
/// labelled by route template (`unmatched` for paths no route has).
async fn record(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let response = next.run(req).await;
    let route = response
        .extensions()
        .get::<Route>()
        .map_or("unmatched", |r| r.0.as_str())
        .to_owned();
    crate::metrics::http_request(
        route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found("Not Found")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed",
    )
}

/// Serve `router` until `shutdown` resolves, then let requests in flight
/// finish (for up to `grace`). A trailing slash is ignored (`/a/` is `/a`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let service = NormalizePathLayer::trim_trailing_slash().layer(router);
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
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .keep_alive(true)
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(service.clone()),
            );
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

#[cfg(test)]
mod tests;
