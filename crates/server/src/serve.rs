//! `serve`: open the database, migrate, build the state, serve until SIGTERM/Ctrl-C, shut down.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use api::liveness::{Liveness, SchemaStatus};
use api::middleware::metrics::{DURATION_BUCKETS, HTTP_REQUEST_DURATION_SECONDS};
use api::{AppState, Services};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use secrecy::ExposeSecret;
use store::Db;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::database::{self, Database};

/// How often the metrics recorder drains its histogram buffers between scrapes.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
/// How long the background tasks get to end after the shutdown token is cancelled (one of them
/// may be mid-way through a database statement).
const TASKS_STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(mut config: Config) -> anyhow::Result<()> {
    let (mode, weakened) = config.auth_mode();
    tracing::info!(
        auth = mode,
        env = config.molecule_env.trim(),
        weakened = %if weakened.is_empty() { "none".to_owned() } else { weakened.join(", ") },
        "auth mode"
    );
    // Listening for SIGTERM from here on: a signal during startup stops it at once.
    let signal = shutdown_signal();
    tokio::pin!(signal);
    refresh_from_control_plane(&mut config).await;
    // Cancelled on SIGTERM/Ctrl-C; every background task watches it (or a child token) and is
    // spawned on `tasks`, which is joined before the database pool closes.
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let metrics = install_metrics_recorder(&shutdown, &tasks)?;
    let database = Database::open(&config).await?;
    let schema = SchemaStatus::default();
    let started = async {
        database::migrate_or_retry(&database, &schema, &shutdown, &tasks).await?;
        let state = build_state(
            &config,
            database.pool.clone(),
            metrics,
            schema.clone(),
            &tasks,
        )
        .await?;
        api::background::start(&state, &shutdown, &tasks);
        // The A2A proxy's record writer: ends after shutdown once everything recorded is written.
        let recorder = &state.messaging.recorder;
        recorder.start(state.db.pool().clone(), &tasks, shutdown.clone());
        let listener = listen(&config).await?;
        anyhow::Ok((state, listener))
    };
    let started = tokio::select! {
        started = started => started,
        signal = &mut signal => Err(anyhow::anyhow!("{signal} during startup")),
    };
    let (state, listener) = match started {
        Ok(started) => started,
        Err(error) => {
            shutdown.cancel();
            stop_tasks(&tasks).await;
            database.close().await;
            return Err(error);
        }
    };
    tracing::info!(addr = %listener.local_addr()?, "workspace-server listening");

    let eic = state.eic.clone();
    let provisioning = state.provisioning.clone();
    let app = api::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let mut serving = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future(),
    );
    let early_exit = tokio::select! {
        signal = &mut signal => { tracing::info!(signal, timeout = ?config.shutdown_timeout, "shutting down: no new connections, finishing requests in flight"); None }
        result = &mut serving => Some(result),
    };
    // SHUTDOWN_TIMEOUT bounds everything from here: the drain gets the budget but a reserve, the
    // clean-up (EIC connections, background tasks, database) the rest.
    let deadline = Instant::now() + config.shutdown_timeout;
    let drain_deadline = deadline - cleanup_reserve(config.shutdown_timeout);
    shutdown.cancel();
    let outcome = match early_exit {
        Some(result) => flatten(result),
        None => match tokio::time::timeout_at(drain_deadline, &mut serving).await {
            Ok(result) => flatten(result),
            Err(_) => {
                serving.abort();
                tracing::warn!("requests still in flight at the shutdown timeout were cut off");
                Ok(())
            }
        },
    };
    let cleanup = async {
        let close_eic = async {
            if let Some(eic) = eic {
                eic.close().await;
            }
        };
        tokio::join!(
            close_eic,
            stop_tasks(&tasks),
            provisioning.drain(TASKS_STOP_TIMEOUT)
        );
        tracing::info!("HTTP server stopped; closing the database");
        database.close().await;
    };
    match tokio::time::timeout_at(deadline, cleanup).await {
        Ok(()) => tracing::info!("stopped"),
        Err(_) => {
            tracing::warn!(timeout = ?config.shutdown_timeout, "shutdown timeout reached; exiting with connections still open")
        }
    }
    outcome
}

/// IPv6 disabled in the kernel (EAFNOSUPPORT) or no IPv6 address to bind.
fn no_ipv6(error: &std::io::Error) -> bool {
    const EAFNOSUPPORT: i32 = 97;
    error.kind() == std::io::ErrorKind::AddrNotAvailable
        || error.raw_os_error() == Some(EAFNOSUPPORT)
}

/// The part of the shutdown budget kept for the clean-up after the drain: a fifth, at most 5 s.
fn cleanup_reserve(budget: Duration) -> Duration {
    (budget / 5).min(Duration::from_secs(5))
}

/// Binds `LISTEN_ADDR:PORT`. The default `::` is dual-stack; on a host without IPv6 it falls
/// back to `0.0.0.0` rather than refusing to start.
async fn listen(config: &Config) -> anyhow::Result<TcpListener> {
    let address = SocketAddr::new(config.listen_addr, config.port);
    match TcpListener::bind(address).await {
        Ok(listener) => Ok(listener),
        Err(error)
            if config.listen_addr == IpAddr::V6(Ipv6Addr::UNSPECIFIED) && no_ipv6(&error) =>
        {
            tracing::warn!(error = %error, "IPv6 unavailable; listening on IPv4 only");
            TcpListener::bind((Ipv4Addr::UNSPECIFIED, config.port))
                .await
                .with_context(|| format!("cannot listen on port {}", config.port))
        }
        Err(error) => Err(error).with_context(|| format!("cannot listen on {address}")),
    }
}

/// Everything handlers reach. Other layers add their parts here (one line each). Tasks handlers
/// start run on `tasks`, joined at shutdown.
pub async fn build_state(
    config: &Config,
    db: Db,
    metrics: PrometheusHandle,
    schema: SchemaStatus,
    tasks: &TaskTracker,
) -> anyhow::Result<AppState> {
    let api_config = config.api_config();
    let eic = eic_pool::EicPool::new(config.eic_config())
        .await
        .context("EIC settings")?;
    // Fails fast in production without a key, as the Go original does at boot.
    let crypto = store::crypto::Crypto::from_env_value(
        config
            .secrets_encryption_key
            .as_ref()
            .map(ExposeSecret::expose_secret),
        api_config.production(),
    )
    .context("SECRETS_ENCRYPTION_KEY")?;
    let provisioning = api::provisioner::Provisioning::from_config(&api_config.provisioner);
    Ok(AppState::new(Services {
        db,
        config: Arc::new(api_config),
        metrics,
        liveness: Liveness::default(),
        schema,
        crypto: Arc::new(crypto),
        events: api::events_hub::EventsHub::default(),
        eic: Some(eic),
        messaging: api::messaging::Messaging::new(tasks.clone()),
        provisioning,
    }))
}

/// The boot-time refresh (`cmd/server/cp_config.go:38-107` at 624ef4d0): with an org id and an
/// admin token, the control plane's current settings replace the configured ones; a failure is
/// logged and the boot goes on.
async fn refresh_from_control_plane(config: &mut Config) {
    let (Some(org_id), Some(admin_token)) = (
        config.org_id.clone().filter(|o| !o.is_empty()),
        config.admin_token.clone(),
    ) else {
        return;
    };
    let cp_url = config
        .molecule_cp_url
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| api::provisioner::control_plane::DEFAULT_BASE_URL.to_string());
    match api::provisioner::boot_config::fetch(&cp_url, &org_id, admin_token.expose_secret()).await
    {
        Ok(values) => {
            tracing::info!(
                keys = values.len(),
                "configuration refreshed from the control plane"
            );
            config.apply_cp_config(&values);
        }
        Err(error) => {
            tracing::warn!(%error, "control plane configuration refresh failed; booting with the local settings")
        }
    }
}

/// Waits (bounded) for every background task to end; the shutdown token is cancelled already.
async fn stop_tasks(tasks: &TaskTracker) {
    tasks.close();
    match tokio::time::timeout(TASKS_STOP_TIMEOUT, tasks.wait()).await {
        Ok(()) => tracing::info!("background tasks stopped"),
        Err(_) => tracing::warn!(
            running = tasks.len(),
            timeout = ?TASKS_STOP_TIMEOUT,
            "background tasks still running at shutdown; closing the database under them"
        ),
    }
}

/// Installs the process-wide Prometheus recorder and keeps its histogram buffers drained.
fn install_metrics_recorder(
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) -> anyhow::Result<PrometheusHandle> {
    let mut builder = PrometheusBuilder::new().set_buckets_for_metric(
        Matcher::Full(HTTP_REQUEST_DURATION_SECONDS.to_string()),
        DURATION_BUCKETS,
    )?;
    for (name, buckets) in eic_pool::HISTOGRAM_BUCKETS {
        builder = builder.set_buckets_for_metric(Matcher::Full(name.to_string()), buckets)?;
    }
    let handle = builder
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    api::middleware::metrics::describe();
    api::workspace_cache::WorkspaceCache::describe();
    let upkeep = handle.clone();
    let shutdown = shutdown.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => upkeep.run_upkeep(),
            }
        }
    });
    Ok(handle)
}

async fn shutdown_signal() -> &'static str {
    let mut terminate = match tokio::signal::unix::signal(
        tokio::signal::unix::SignalKind::terminate(),
    ) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::error!(error = %error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}

fn flatten(result: Result<std::io::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    result
        .context("the HTTP server task failed")?
        .context("the HTTP server failed")
}
