//! The server's own thread, tokio runtime and accept loop.
//!
//! The fake runs on a dedicated std thread with its own runtime so that it works the
//! same from sync tests, `#[tokio::test]` (current-thread) tests and busy benchmarks:
//! a test runtime that blocks or is saturated can never starve the fake, and the fake
//! never depends on the caller having a runtime at all.

use std::io;
use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::routes;
use super::state::Shared;

/// The running server; [`ServerThread::stop`] (or dropping it) ends it.
pub(crate) struct ServerThread {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Serves `listener` (already bound, so the caller knows the port before this
    /// returns) on a new thread.
    pub fn spawn(
        shared: Arc<Shared>,
        listener: StdListener,
        worker_threads: usize,
    ) -> io::Result<ServerThread> {
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads.max(1))
            .thread_name("fake-agent-worker")
            .enable_all()
            .build()?;
        let (shutdown, shutdown_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("fake-agent".to_owned())
            .spawn(move || {
                runtime.block_on(accept_loop(listener, shared, shutdown_rx));
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

async fn accept_loop(
    listener: StdListener,
    shared: Arc<Shared>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("fake agent server: cannot serve the listener: {error}");
            return;
        }
    };
    loop {
        tokio::select! {
            // A send or a dropped sender both mean "stop".
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                // Out of file descriptors and the like: back off, keep serving.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    // Small request/answer pairs: without this, Nagle plus delayed ACKs add ~40 ms to
    // some exchanges and the benchmarks would measure the kernel, not sandboxd.
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { routes::handle(&shared, request).await }
    });
    // Errors end one connection only: a client that hung up, or an injected `Drop`
    // (the service's error makes hyper close the socket without an answer).
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}
