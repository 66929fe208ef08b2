//! `sandboxd`: the sandbox control plane for AI agents.
//!
//! The command line over the `sandboxd` library (`src/lib.rs`), which holds the
//! host's modules.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sandboxd::{config, plugin_cmd, serve, store_cmd};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: every request allocates and frees many
/// small buffers across threads (the body, headers, a store, the lifted
/// records, the JSON), and glibc's allocator was a tenth of the CPU of a search
/// of 100 (`_int_malloc`, `_int_free`, `malloc_consolidate`) in the profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "sandboxd",
    version,
    about = "The sandbox control plane for AI agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API.
    Serve {
        /// A TOML configuration file; environment variables (SANDBOXD_*) override it.
        #[arg(long, env = "SANDBOXD_CONFIG")]
        config: Option<PathBuf>,
        /// Run this plugin component instead of the embedded one.
        #[arg(long, env = "SANDBOXD_PLUGIN")]
        plugin: Option<PathBuf>,
    },
    /// Offline tools for plugin components.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Offline tools for the embedded store.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Measure one durable commit of the embedded store, alone.
    Bench {
        /// Where to make the temporary store (default: the system's temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, default_value_t = 500)]
        iterations: usize,
        /// Print one JSON line instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Validate a component as `serve` would, and print its versions and interface.
    Check {
        /// The component (.wasm) to check.
        file: PathBuf,
    },
    /// Measure a fresh store + instantiate + one export call.
    Bench {
        /// The component to measure (default: the embedded plugin).
        file: Option<PathBuf>,
        #[arg(long, default_value_t = 2000)]
        iterations: usize,
        /// Print one JSON line instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn init_tracing() {
    let filter = EnvFilter::try_from_env("SANDBOXD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, not in files and journals.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if std::env::var("SANDBOXD_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sandboxd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve { config, plugin } => {
            let mut config = match config::Config::load(config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("sandboxd: {e}");
                    return ExitCode::from(2);
                }
            };
            if plugin.is_some() {
                config.plugin.path = plugin;
            }
            runtime.block_on(serve::run(config)).map(|()| true)
        }
        Command::Plugin(PluginCommand::Check { file }) => runtime.block_on(plugin_cmd::check(file)),
        Command::Plugin(PluginCommand::Bench {
            file,
            iterations,
            json,
        }) => runtime
            .block_on(plugin_cmd::bench(file, iterations.max(10), json))
            .map(|()| true),
        Command::Store(StoreCommand::Bench {
            dir,
            iterations,
            json,
        }) => runtime
            .block_on(store_cmd::bench(dir.as_deref(), iterations.max(10), json))
            .map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        // A refusal that was already explained on standard output.
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("sandboxd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
