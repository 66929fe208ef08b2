//! A webhook receiver for tests: a real HTTP server on loopback that records
//! every request and answers a status the test chooses. Stands in for the
//! receivers of event callbacks and agent-server webhooks.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use tower::ServiceExt;

use crate::serve::ServerThread;

/// The `X-Sandboxd-Signature` a delivery of `body` must carry for a callback
/// whose secret is `secret`: `sha256=` and the hex HMAC-SHA256.
pub fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

struct Shared {
    received: Mutex<Vec<Received>>,
    status: AtomicU16,
}

/// A running receiver; dropping it closes the port and joins its thread.
pub struct Receiver {
    shared: Arc<Shared>,
    url: String,
    _server: ServerThread,
}

impl Receiver {
    /// A receiver answering 200 until told otherwise.
    pub fn start() -> Receiver {
        let listener = std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .unwrap_or_else(|e| panic!("receiver bind: {e}"));
        let url = format!(
            "http://{}",
            listener
                .local_addr()
                .unwrap_or_else(|e| panic!("receiver address: {e}"))
        );
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            status: AtomicU16::new(200),
        });
        // Every method and path is a callback: one fallback, no routes.
        let router = Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&shared));
        let server = ServerThread::spawn("receiver", listener, 1, move |request| {
            router.clone().oneshot(request)
        })
        .unwrap_or_else(|e| panic!("receiver: cannot start its server: {e}"));
        Receiver {
            shared,
            url,
            _server: server,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The status every request gets from now on.
    pub fn set_status(&self, status: u16) {
        self.shared.status.store(status, Ordering::Relaxed);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Wait (up to `timeout`) until at least `n` requests arrived; all of them.
    pub fn wait_for(&self, n: usize, timeout: std::time::Duration) -> Vec<Received> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n || std::time::Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Records the request and answers `{}` with the status the test chose. The body
/// is read without a size cap, and a body that cannot be read is recorded empty:
/// the test wants to see every request, even a broken one.
async fn receive(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let headers = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    shared
        .received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Received {
            method: method.to_string(),
            path: uri.path().to_owned(),
            headers,
            body,
        });
    let status =
        StatusCode::from_u16(shared.status.load(Ordering::Relaxed)).unwrap_or(StatusCode::OK);
    let mut response = Response::new(Body::from("{}"));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    use super::Receiver;

    /// One raw HTTP/1.1 exchange, so the test needs no async runtime.
    fn exchange(receiver: &Receiver, request: &str) -> String {
        let addr = receiver.url().trim_start_matches("http://");
        let mut stream =
            TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream
            .write_all(request.as_bytes())
            .unwrap_or_else(|e| panic!("write the request: {e}"));
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .unwrap_or_else(|e| panic!("read the answer: {e}"));
        answer
    }

    #[test]
    fn records_every_request_and_answers_the_chosen_status() {
        let receiver = Receiver::start();
        let answer = exchange(
            &receiver,
            "POST /hooks/a?x=1 HTTP/1.1\r\nHost: x\r\nX-Signature: abc\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{\"n\": 1}\n",
        );
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\n{}"), "{answer}");

        receiver.set_status(503);
        let answer = exchange(
            &receiver,
            "DELETE /anything/at/all HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");

        let received = receiver.wait_for(2, Duration::from_secs(5));
        assert_eq!(received.len(), 2, "{received:?}");
        assert_eq!(received[0].method, "POST");
        assert_eq!(received[0].path, "/hooks/a");
        assert_eq!(received[0].header("x-signature"), Some("abc"));
        assert_eq!(received[0].json()["n"], 1);
        assert_eq!(received[1].method, "DELETE");
        assert_eq!(received[1].path, "/anything/at/all");
        assert!(received[1].body.is_empty());
    }

    #[test]
    fn dropping_it_frees_the_port() {
        let receiver = Receiver::start();
        let addr = receiver.url().trim_start_matches("http://").to_owned();
        assert!(TcpStream::connect(&addr).is_ok());
        drop(receiver);
        assert!(TcpStream::connect(&addr).is_err(), "{addr} still accepts");
        TcpListener::bind(&addr).unwrap_or_else(|e| panic!("{addr} is not free again: {e}"));
    }
}
