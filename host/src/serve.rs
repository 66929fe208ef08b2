//! `sandboxd serve`: wire the parts together and run until told to stop.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::api::{self, AppState, Authenticator};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::config::DATABASE_CONNECTIONS;
use crate::egress::EgressPolicy;
use crate::engine::EngineHandle;
use crate::host_key::HostKey;
use crate::imports::{Budget, HttpImport, Services, plugin_settings};
use crate::local_runtime::{Endpoint, LocalRuntime};
use crate::metrics;
use crate::plugin::{CallLimits, EMBEDDED_PLUGIN, HostOptions, PluginHost};
use crate::storage::{PgStore, RedbStore, Store};
use crate::sync::{
    Changes, Lifecycle, Poller, Reconciler, run_deliveries, run_lifecycle, run_poller,
    run_reconciler,
};

/// How long requests in flight may take to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Log lines kept from one API call; the rest are dropped and counted.
const CALL_LOG_LINES: u64 = 200;
/// Log lines kept from one background call.
const POLL_LOG_LINES: u64 = 20_000;

/// How long after a plugin call's deadline a start it left half-way is taken
/// for abandoned (the call is surely over by then).
const STUCK_START_GRACE: Duration = Duration::from_secs(5);

/// Everything a running sandboxd is made of.
pub struct Parts {
    pub engine: EngineHandle,
    pub plugin: PluginHost,
    /// The embedded local runtime, when no remote runtime API is configured.
    pub local: Option<LocalRuntime>,
    pub host_key: HostKey,
    pub egress: Arc<EgressPolicy>,
    pub store: Store,
}

/// The engine, the shared services, the runtime and the plugin of `config` (the
/// embedded plugin unless `config.plugin.path` names another).
pub async fn assemble(config: &Config) -> anyhow::Result<Parts> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    let store = match &config.database_url {
        Some(url) => Store::Postgres(Box::new(
            PgStore::connect(url, DATABASE_CONNECTIONS)
                .await
                .context("cannot open the PostgreSQL store (database_url)")?,
        )),
        None => Store::Redb(RedbStore::open(
            &config.data_dir.join("sandboxd.redb"),
            config.store_cache_bytes,
        )?),
    };
    let host_key = match &config.host_key {
        Some(key) => HostKey::from_hex(key.expose()).context("host_key")?,
        None => HostKey::open(&config.data_dir).with_context(|| {
            format!("cannot open the host key in {}", config.data_dir.display())
        })?,
    };
    let (local, runtime) = match &config.runtime.api_url {
        Some(url) => (
            None,
            Endpoint {
                url: url.clone(),
                api_key: config.runtime.api_key.expose().to_owned(),
            },
        ),
        None => {
            let (local, endpoint) = LocalRuntime::start(
                config.local_runtime.clone(),
                config.specs.clone(),
                &config.data_dir,
                store.clone(),
                host_key.clone(),
            )
            .await?;
            (Some(local), endpoint)
        }
    };
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let egress = Arc::new(
        EgressPolicy::new(
            config.plugin.allowed_hosts.clone(),
            &runtime.url,
            store.clone(),
        )
        .await
        .context("cannot set up the egress policy")?,
    );
    let services = Arc::new(Services {
        http: HttpImport::new(config, &runtime, host_key.clone(), egress.clone())
            .context("cannot set up the HTTP client")?,
        store: store.clone(),
        settings: plugin_settings(config, &runtime.url, &now),
    });

    let engine =
        EngineHandle::new(&config.plugin).context("cannot create the WebAssembly engine")?;
    let (wasm, source) = match &config.plugin.path {
        Some(path) => (read_plugin(path)?, path.display().to_string()),
        None => (EMBEDDED_PLUGIN.to_vec(), "embedded".to_owned()),
    };
    let plugin = PluginHost::new(
        engine.clone(),
        services,
        host_options(config),
        wasm,
        &source,
    )
    .await
    .with_context(|| format!("cannot load the plugin ({source})"))?;
    Ok(Parts {
        engine,
        plugin,
        local,
        host_key,
        egress,
        store,
    })
}

/// The plugin's limits and where it comes from, per `[plugin]`.
fn host_options(config: &Config) -> HostOptions {
    let p = &config.plugin;
    HostOptions {
        api: CallLimits {
            timeout: p.call_timeout,
            budget: Budget {
                memory_bytes: p.memory_limit_bytes,
                http_requests: p.call_http_requests,
                write_bytes: p.call_write_bytes,
                log_lines: CALL_LOG_LINES,
            },
        },
        background: CallLimits {
            timeout: p.poll_timeout,
            budget: Budget {
                memory_bytes: p.memory_limit_bytes,
                http_requests: p.poll_http_requests,
                write_bytes: p.poll_write_bytes,
                log_lines: POLL_LOG_LINES,
            },
        },
        max_instances: p.max_instances,
        cache_dir: config.data_dir.join("plugin-cache"),
        file: p.path.clone(),
    }
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    metrics::install().context("cannot set up the metrics recorder")?;
    let Parts {
        engine,
        plugin,
        local,
        host_key,
        egress,
        store,
    } = assemble(&config).await?;
    let current = plugin.current();
    metrics::plugin_serving(None, (&current.plugin_version, &current.contract_version));
    tracing::info!(
        plugin = &*current.plugin_version,
        contract = %current.contract_version,
        sha256 = %current.sha256,
        source = %current.source,
        allocator = ?engine.allocator,
        from_cache = current.from_cache,
        compile_ms = format!("{:.1}", current.compile_millis),
        "plugin loaded"
    );

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let plugin = Arc::new(plugin);
    crate::plugin::reload_on_sighup(plugin.clone()).context("cannot handle SIGHUP")?;
    // Kept alive until the server stops.
    let _watcher = match (&config.plugin.path, config.plugin.watch) {
        (Some(path), true) => Some(
            crate::plugin::watch(plugin.clone(), path)
                .with_context(|| format!("cannot watch the plugin file {}", path.display()))?,
        ),
        _ => None,
    };
    let changes = Arc::new(Changes::default());
    let interval = Duration::from_secs(u64::from(config.runtime.polling_interval_secs));
    let cluster = Arc::new(match &store {
        Store::Postgres(pg) => {
            let cluster = Cluster::join(
                (**pg).clone(),
                interval,
                (&current.plugin_version, &current.contract_version),
            )
            .await
            .context("cannot join the replicas on the database")?;
            crate::cluster::bridge(pg, &changes, cluster.id());
            tracing::info!(replica = %cluster.id(), share = ?cluster.share().buckets, "joined the replicas on the database");
            cluster
        }
        Store::Redb(_) => Cluster::single(),
    });
    tokio::spawn(crate::cluster::run_heartbeats(
        cluster.clone(),
        plugin.clone(),
    ));
    let poller = Arc::new(Poller::new(
        plugin.clone(),
        changes.clone(),
        cluster.clone(),
    ));
    let reconciler = Arc::new(Reconciler::new(
        plugin.clone(),
        cluster.clone(),
        store.is_shared(),
        config.runtime.orphans,
        config.plugin.call_timeout + STUCK_START_GRACE,
    ));
    tokio::spawn(run_reconciler(
        reconciler.clone(),
        Duration::from_secs(u64::from(config.runtime.reconcile_interval_secs)),
    ));
    let lifecycle = Arc::new(Lifecycle::new(
        plugin.clone(),
        changes.clone(),
        cluster.clone(),
    ));
    tokio::spawn(run_lifecycle(lifecycle.clone(), config.lifecycle.interval));
    let state = Arc::new(AppState {
        plugin: plugin.clone(),
        auth: Authenticator::new(&config.auth)?,
        changes: changes.clone(),
        host_key,
        poller: poller.clone(),
        reconciler,
        lifecycle,
        egress,
        store,
        cluster: cluster.clone(),
        watching: _watcher.is_some(),
    });
    if let (Some(local), true) = (&local, config.lifecycle.wake_on_request) {
        let plugin = plugin.clone();
        local.wake_with(Arc::new(move |session_id: String| {
            let plugin = plugin.clone();
            Box::pin(async move {
                plugin
                    .lifecycle(&crate::plugin::Caller::Host)
                    .wake(&session_id)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        }));
    }
    let (router, _doc) = api::app(state, &config.auth)?;
    if config.sync.plan.poll {
        tokio::spawn(run_poller(poller, interval));
    } else {
        match &config.sync.plan.callback_url {
            Some(url) => {
                tracing::info!(web_url = %url, "not polling agent servers: they call back through webhooks")
            }
            None => tracing::warn!(
                "not polling agent servers, and they are not told where to call back (no web_url): only webhooks configured elsewhere will arrive"
            ),
        }
    }
    tokio::spawn(run_deliveries(plugin, changes, cluster));
    let runtime_api = config
        .runtime
        .api_url
        .as_deref()
        .unwrap_or("the embedded local runtime");
    tracing::info!(%addr, %runtime_api, auth = ?config.auth.mode, "sandboxd listening");
    // Tests and scripts read the address (the port may be chosen by the OS) from
    // this one line on standard output.
    println!("sandboxd listening on http://{addr}");

    api::serve(listener, router, shutdown_signal(), SHUTDOWN_GRACE).await;
    if let Some(local) = local {
        local.shutdown().await;
    }
    tracing::info!("sandboxd stopped");
    Ok(())
}

fn read_plugin(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read the plugin file {}", path.display()))
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}
