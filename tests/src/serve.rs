//! The thread, tokio runtime and accept loop every fake peer runs on.
//!
//! Each fake runs on a dedicated std thread with its own runtime so that it works the
//! same from sync tests, `#[tokio::test]` (current-thread) tests and busy benchmarks:
//! a test runtime that blocks or is saturated can never starve the fake, and the fake
//! never depends on the caller having a runtime at all.
//!
//! Connections are served by hyper directly rather than by `axum::serve`, because a
//! fake must be able to close a connection without any answer (an injected `Drop`):
//! the handler's [`DropConnection`] error makes hyper cut the socket, which an axum
//! handler, whose every outcome is a response, cannot do.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::TcpListener as StdListener;
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Returned by a handler to make hyper close the connection without writing any
/// response: the client sees a connection error, not an HTTP status.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for DropConnection {}

/// A running server; [`ServerThread::stop`] (or dropping it) ends it.
pub(crate) struct ServerThread {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Serves `listener` (already bound, so the caller knows the port before this
    /// returns) on a new thread called `name`, answering every request with
    /// `handler`; a handler's error (e.g. [`DropConnection`]) closes its connection
    /// without an answer.
    pub fn spawn<H, F, B, E>(
        name: &str,
        listener: StdListener,
        worker_threads: usize,
        handler: H,
    ) -> io::Result<ServerThread>
    where
        H: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
        F: Future<Output = Result<Response<B>, E>> + Send + 'static,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads.max(1))
            .thread_name(format!("{name}-worker"))
            .enable_all()
            .build()?;
        let (shutdown, shutdown_rx) = oneshot::channel();
        let label = name.to_owned();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                runtime.block_on(accept_loop(&label, listener, handler, shutdown_rx));
                // Dropping the runtime cancels every connection (including requests
                // parked in a delay) and joins its worker threads, so after `stop`
                // nothing of the fake is left: no thread, no socket.
                drop(runtime);
            })?;
        Ok(ServerThread {
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// Stops accepting, closes every connection and joins the thread. Idempotent.
    pub fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // An error means the loop already ended; joining is all that is left.
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic on the server thread was already printed; the test that caused
            // it fails on its own, so there is nothing more to report here.
            let _ = thread.join();
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept_loop<H, F, B, E>(
    name: &str,
    listener: StdListener,
    handler: H,
    mut shutdown: oneshot::Receiver<()>,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
    F: Future<Output = Result<Response<B>, E>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("{name}: cannot serve the listener: {error}");
            return;
        }
    };
    loop {
        tokio::select! {
            // A send or a dropped sender both mean "stop".
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(stream, handler.clone()));
                }
                // Out of file descriptors and the like: back off, keep serving.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

async fn serve_connection<H, F, B, E>(stream: TcpStream, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Send + 'static,
    F: Future<Output = Result<Response<B>, E>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    // Small request/answer pairs: without this, Nagle plus delayed ACKs add ~40 ms to
    // some exchanges and the benchmarks would measure the kernel, not sandboxd.
    let _ = stream.set_nodelay(true);
    // Errors end one connection only: a client that hung up, or a `DropConnection`
    // (the handler's error makes hyper close the socket without an answer).
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service_fn(handler))
        .await;
}
