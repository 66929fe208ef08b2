//! The fake runtime API as a standalone server, for running sandboxd by hand or from
//! scripts without a cluster. Prints its URL and key, serves until Ctrl-C.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sandboxd_tests::fake_runtime::{FakeRuntime, FakeRuntimeOptions};

/// A fake of the remote runtime API, on loopback.
#[derive(Parser)]
#[command(name = "fake-runtime")]
struct Args {
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// The X-API-Key clients must send (default: random).
    #[arg(long)]
    api_key: Option<String>,
    /// Each runtime's url, with {runtime_id} and {session_id} replaced.
    #[arg(long, default_value = "http://127.0.0.1:9/{runtime_id}")]
    url_template: String,
    /// The status of new runtimes.
    #[arg(long, default_value = "running")]
    start_status: String,
    /// Keep stopped runtimes visible with status "stopped".
    #[arg(long)]
    keep_stopped: bool,
    /// Delay added to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut options = FakeRuntimeOptions {
        url_template: args.url_template,
        start_status: args.start_status,
        keep_stopped: args.keep_stopped,
        latency: Duration::from_millis(args.latency_ms),
        worker_threads: args.workers.max(1),
        addr: SocketAddr::new(args.host, args.port),
        ..Default::default()
    };
    if let Some(key) = args.api_key {
        options.api_key = key;
    }
    match run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fake-runtime: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: FakeRuntimeOptions) -> anyhow::Result<()> {
    let fake = FakeRuntime::try_start_with(options).context("cannot start")?;
    // Machine-readable lines first, so scripts can `eval` or grep them.
    println!("FAKE_RUNTIME_URL={}", fake.url());
    println!("FAKE_RUNTIME_API_KEY={}", fake.api_key());
    println!(
        "fake runtime API listening on {} (Ctrl-C to stop)",
        fake.url()
    );

    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot build the signal runtime")?;
    signals
        .block_on(tokio::signal::ctrl_c())
        .context("cannot wait for Ctrl-C")?;
    fake.shutdown();
    println!("stopped after {} requests", fake.total_requests());
    Ok(())
}
