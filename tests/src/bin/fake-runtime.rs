//! The fake runtime API as a standalone server, for running sandboxd by hand or from
//! scripts without a cluster. Prints its URL and key, serves until Ctrl-C.
//!
//! Arguments are parsed with std alone: a handful of flags do not justify a CLI
//! dependency in the test crate.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use sandboxd_tests::fake_runtime::{FakeRuntime, FakeRuntimeOptions};

const USAGE: &str = "\
usage: fake-runtime [options]

  --port N              port to listen on (default 0: any free port)
  --host IP             address to listen on (default 127.0.0.1)
  --api-key KEY         the X-API-Key clients must send (default: random)
  --url-template T      runtime url, with {runtime_id} and {session_id}
                        (default http://127.0.0.1:9/{runtime_id})
  --start-status S      status of new runtimes (default running)
  --keep-stopped        keep stopped runtimes visible with status \"stopped\"
  --latency-ms N        delay added to every answer
  --workers N           worker threads (default 1)
  -h, --help            this text";

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("fake-runtime: {error:#}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
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

/// The options from the command line; `None` when help was asked for.
fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Option<FakeRuntimeOptions>> {
    let mut options = FakeRuntimeOptions::default();
    let mut host = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut port = 0u16;
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--port" => port = value()?.parse().context("--port")?,
            "--host" => host = value()?.parse().context("--host")?,
            "--api-key" => options.api_key = value()?,
            "--url-template" => options.url_template = value()?,
            "--start-status" => options.start_status = value()?,
            "--keep-stopped" => options.keep_stopped = true,
            "--latency-ms" => {
                options.latency = Duration::from_millis(value()?.parse().context("--latency-ms")?);
            }
            "--workers" => options.worker_threads = value()?.parse().context("--workers")?,
            other => bail!("unknown argument {other:?}"),
        }
    }
    options.addr = SocketAddr::new(host, port);
    Ok(Some(options))
}
