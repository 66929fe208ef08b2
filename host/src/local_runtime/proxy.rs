//! The reverse proxy from the runtime's port to a sandbox's ports: how the
//! exposed URLs (`/{runtime_id}/…`, `/vscode/…`, `/work-1/…`, `/work-2/…`) reach
//! the services inside a local sandbox. Bodies stream both ways, and connection
//! upgrades (WebSockets, as the agent server and VSCode use) are spliced through.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HOST, HeaderValue, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

pub type RtBody = BoxBody<Bytes, hyper::Error>;

pub fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<RtBody> {
    let mut response = Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn bad_gateway(detail: String) -> Response<RtBody> {
    full(
        StatusCode::BAD_GATEWAY,
        serde_json::json!({ "detail": detail }).to_string(),
    )
}

/// Headers that belong to one hop, not to the message (RFC 9110, 7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// Send `req` to `127.0.0.1:{port}` at `path_and_query` and answer what it answers.
pub async fn forward(
    mut req: Request<Incoming>,
    port: u16,
    path_and_query: &str,
) -> Response<RtBody> {
    let upgrading = req.headers().contains_key(UPGRADE);
    let client_upgrade = upgrading.then(|| hyper::upgrade::on(&mut req));

    let stream = match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
        Ok(s) => s,
        Err(e) => return bad_gateway(format!("the sandbox does not answer on its port: {e}")),
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(pair) => pair,
        Err(e) => return bad_gateway(format!("cannot talk HTTP to the sandbox: {e}")),
    };
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });

    let (mut parts, body) = req.into_parts();
    parts.uri = match path_and_query.parse() {
        Ok(uri) => uri,
        Err(e) => {
            return full(
                StatusCode::BAD_REQUEST,
                serde_json::json!({ "detail": format!("bad path: {e}") }).to_string(),
            );
        }
    };
    for name in HOP_BY_HOP {
        parts.headers.remove(*name);
    }
    if !upgrading {
        parts.headers.remove(CONNECTION);
    }
    if let Ok(host) = HeaderValue::from_str(&format!("127.0.0.1:{port}")) {
        parts.headers.insert(HOST, host);
    }
    let mut response = match sender.send_request(Request::from_parts(parts, body)).await {
        Ok(r) => r,
        Err(e) => return bad_gateway(format!("the sandbox's answer broke off: {e}")),
    };

    if let (Some(client_upgrade), StatusCode::SWITCHING_PROTOCOLS) =
        (client_upgrade, response.status())
    {
        let backend_upgrade = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            if let (Ok(client), Ok(backend)) = (client_upgrade.await, backend_upgrade.await) {
                let _ = tokio::io::copy_bidirectional(
                    &mut TokioIo::new(client),
                    &mut TokioIo::new(backend),
                )
                .await;
            }
        });
    }
    response.map(BodyExt::boxed)
}
