//! The OpenAPI 3.1 document of the API, generated from the handlers' own types
//! (`#[utoipa::path]` on each handler, `ToSchema`/`IntoParams` on what they
//! take and answer) and served at `GET /openapi.json`.
//!
//! What every route shares is added here, once, as a rule rather than on each
//! handler: the security scheme of the configured `[auth]` mode, and the
//! answers any authenticated route or any plugin call can give (401, 403, 500,
//! 503, with the `{"detail"}` body). So the document says what this server,
//! as configured, really does.

use std::sync::Arc;

use axum::Extension;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa::OpenApi as _;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Response, ResponseBuilder};

use super::error::ErrorBody;
use crate::config::{AuthConfig, AuthMode};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "sandboxd",
        description = "The sandbox control plane for AI agents: sandboxes (start, pause, resume, \
            delete, five statuses, exposed URLs), their specs, the conversations and events synced \
            from their agent servers, event callbacks, and the agent servers' webhooks. Errors are \
            `{\"detail\": \"…\"}`.",
        license(name = "Apache-2.0"),
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "sandboxes", description = "Sandboxes of the calling user"),
        (name = "sandbox-specs", description = "What sandboxes are started from"),
        (name = "conversations", description = "Conversations and events synced from agent servers"),
        (name = "event-callbacks", description = "Subscriptions to new events, signed deliveries"),
        (name = "webhooks", description = "For agent servers: authenticated by their session key"),
        (name = "admin", description = "Operator actions: an admin key"),
        (name = "operations", description = "Probes, metrics and this document"),
    ),
)]
pub struct ApiDoc;

/// The name of the security scheme that users (and admins) authenticate with.
const USER_SCHEME: &str = "user";
/// The scheme of the agent servers' webhooks.
const SESSION_SCHEME: &str = "session_key";

/// Routes whose handlers make no plugin call (so cannot fail like one).
const NO_PLUGIN_CALL: [&str; 5] = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/admin/plugin",
];

/// The document as this server serves it, for its `[auth]` configuration.
pub fn finish(mut doc: OpenApi, auth: &AuthConfig) -> OpenApi {
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        SESSION_SCHEME.into(),
        RefOr::T(SecurityScheme::ApiKey(ApiKey::Header(
            ApiKeyValue::with_description(
                "X-Session-API-Key",
                "The session key of the agent server's sandbox",
            ),
        ))),
    );
    let user_scheme = match auth.mode {
        AuthMode::None => None,
        AuthMode::ApiKeys => Some(SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An API key from [[auth.keys]]"))
                .build(),
        )),
        AuthMode::TrustedHeader => Some(SecurityScheme::ApiKey(ApiKey::Header(
            ApiKeyValue::with_description(
                auth.user_header.as_str(),
                "The user id, set by the gateway in front of sandboxd",
            ),
        ))),
    };
    let authenticates = user_scheme.is_some();
    if let Some(scheme) = user_scheme {
        components
            .security_schemes
            .insert(USER_SCHEME.into(), RefOr::T(scheme));
    }

    for (path, item) in doc.paths.paths.iter_mut() {
        let calls_plugin = !NO_PLUGIN_CALL.contains(&path.as_str());
        let admin = path.starts_with("/admin") || path == "/metrics";
        for op in operations(item) {
            // A handler that names its security keeps it (`security(())`: open;
            // webhooks: the session key); the others are the users' routes.
            let users_route = op.security.is_none();
            if users_route && authenticates {
                op.security = Some(vec![SecurityRequirement::new(
                    USER_SCHEME,
                    Vec::<String>::new(),
                )]);
                add(
                    op,
                    401,
                    "Not authenticated: a missing or unknown credential",
                );
            }
            if admin && authenticates {
                add(op, 403, "Authenticated, but not with an admin key");
            }
            if calls_plugin {
                add(
                    op,
                    500,
                    "A fault on our side; the detail names an error id that is in the log",
                );
                add(
                    op,
                    503,
                    "The plugin call passed its deadline or one of its limits (named in the detail)",
                );
            }
        }
    }
    doc
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// Add an error answer with the `{"detail"}` body, unless the route already
/// documents that status.
fn add(op: &mut Operation, status: u16, description: &str) {
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| RefOr::T(error_response(description)));
}

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        )
        .build()
}

/// The document, rendered once at start-up.
#[derive(Clone)]
pub struct Rendered(pub Arc<String>);

impl Rendered {
    pub fn new(doc: &OpenApi) -> anyhow::Result<Rendered> {
        Ok(Rendered(Arc::new(doc.to_pretty_json()?)))
    }
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", operation_id = "openapi", tag = "operations", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object)),
)]
pub async fn openapi_json(Extension(doc): Extension<Rendered>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "application/json")],
        doc.0.as_str().to_owned(),
    )
}

/// The document's skeleton (info, tags, shared schemas), before the routes.
pub fn base() -> OpenApi {
    ApiDoc::openapi()
}
