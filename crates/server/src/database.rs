//! The database: an external one from `DATABASE_URL` or the built-in PostgreSQL, the pool, and
//! the migrations (retried in the background while an external database is unreachable).

use std::time::Duration;

use anyhow::Context;
use api::liveness::SchemaStatus;
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{Connection, PgPool};
use store::{Db, StoreError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::embedded_pg::EmbeddedPostgres;

/// Bound of the reachability probe before migrating (a host that drops packets).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Bound of closing the pool at shutdown.
const POOL_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The database handle and, when it is ours, the built-in cluster behind it (stopped after the
/// handle closes).
#[derive(Debug)]
pub struct Database {
    pub pool: Db,
    pub embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// Connects lazily, so the server comes up (and `/health` answers) while the database is down.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let (options, embedded) = match &config.database_url {
            Some(url) => {
                let options: PgConnectOptions = url
                    .expose_secret()
                    .parse()
                    .context("DATABASE_URL is not a PostgreSQL URL")?;
                tracing::info!(
                    host = %options.get_socket().map_or_else(|| options.get_host().to_string(), |s| s.display().to_string()),
                    port = options.get_port(),
                    database = options.get_database().unwrap_or_default(),
                    "database: external PostgreSQL (DATABASE_URL)"
                );
                (options, None)
            }
            None => {
                let embedded = EmbeddedPostgres::start(&config.data_dir).await?;
                (embedded.database_url().parse()?, Some(embedded))
            }
        };
        // PostgreSQL's NOTICEs (`trigger … does not exist, skipping` from idempotent migrations)
        // would reach the log at info through sqlx: only warnings and errors are sent.
        let options = options.options([("client_min_messages", "warning")]);
        // `DB_MAX_CONNECTIONS` bounds both: half for transactions (sqlx's pool: every write and
        // heartbeat), the rest for single statements (the lane, which skips the pool's ping).
        let transaction_connections = (config.db_max_connections / 2).max(1);
        let statement_connections = config
            .db_max_connections
            .saturating_sub(transaction_connections)
            .max(1);
        let pool = PgPoolOptions::new()
            .max_connections(transaction_connections)
            .acquire_timeout(config.db_acquire_timeout)
            // A ping before every acquire doubles each request's round trips. A connection
            // that died (database restarted) fails its next query instead; the pool then drops
            // it, and the request answers 503 `platform_unavailable`.
            .test_before_acquire(false)
            .connect_lazy_with(options);
        let pool = Db::new(pool, statement_connections);
        Ok(Database { pool, embedded })
    }

    /// Closes the pool, then stops the built-in cluster if it is ours.
    pub async fn close(self) {
        // A connection a task never gives back must not hold the shutdown forever.
        if tokio::time::timeout(POOL_CLOSE_TIMEOUT, self.pool.close())
            .await
            .is_err()
        {
            tracing::warn!(timeout = ?POOL_CLOSE_TIMEOUT, "database connections still in use at shutdown were dropped");
        }
        if let Some(embedded) = self.embedded
            && let Err(error) = embedded.stop().await
        {
            tracing::error!(
                error = format!("{error:#}"),
                "could not stop the built-in PostgreSQL"
            );
        }
    }
}

/// Migrates now. When an external database is unreachable, returns `Ok` and keeps trying in a
/// background task (`/ready` says `migrations pending` meanwhile); any other failure is fatal.
pub async fn migrate_or_retry(
    database: &Database,
    schema: &SchemaStatus,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) -> anyhow::Result<()> {
    let attempt = match probe(&database.pool).await {
        Ok(()) => store::migrate(&database.pool).await,
        Err(error) => Err(StoreError::Database(error)),
    };
    match attempt {
        Ok(()) => {
            schema.mark_migrated();
            tracing::info!("database schema is up to date");
            Ok(())
        }
        Err(error) if database.embedded.is_none() && is_unreachable(&error) => {
            tracing::warn!(
                error = %error_chain(&error),
                "database unreachable at startup: serving anyway (/ready answers 503) and retrying the migrations in the background"
            );
            tasks.spawn(retry_migrations(
                database.pool.pool().clone(),
                schema.clone(),
                shutdown.clone(),
            ));
            Ok(())
        }
        Err(error) => Err(anyhow::Error::new(error).context("database migration failed")),
    }
}

/// One direct connection attempt: fails at once when nothing listens, where the pool would keep
/// retrying until its acquire timeout.
async fn probe(pool: &PgPool) -> Result<(), sqlx::Error> {
    let options = pool.connect_options();
    match tokio::time::timeout(PROBE_TIMEOUT, PgConnection::connect_with(&options)).await {
        Ok(connection) => connection?.close().await,
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    }
}

async fn retry_migrations(pool: PgPool, schema: SchemaStatus, shutdown: CancellationToken) {
    let mut delay = Duration::from_secs(1);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        let attempt = match probe(&pool).await {
            Ok(()) => migrate_on_blocking_thread(&pool).await,
            Err(error) => Err(StoreError::Database(error)),
        };
        match attempt {
            Ok(()) => {
                schema.mark_migrated();
                tracing::info!("database reachable again: schema is up to date");
                return;
            }
            Err(error) if is_unreachable(&error) => {
                tracing::warn!(error = %error_chain(&error), retry_in = ?delay, "database still unreachable");
            }
            Err(error) => {
                // Not a connectivity fault: retrying cannot help, and the server stays unready.
                tracing::error!(error = %error_chain(&error), "database migration failed; /ready stays 503");
                return;
            }
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// `store::migrate` on a blocking thread: its future is not `Send` for every lifetime (sqlx's
/// `Acquire` bounds), so it cannot run inside `tokio::spawn` directly.
async fn migrate_on_blocking_thread(pool: &PgPool) -> Result<(), StoreError> {
    let runtime = tokio::runtime::Handle::current();
    let pool = pool.clone();
    match tokio::task::spawn_blocking(move || runtime.block_on(store::migrate(&pool))).await {
        Ok(result) => result,
        Err(join_error) => std::panic::resume_unwind(join_error.into_panic()),
    }
}

/// Faults of reaching the database (worth retrying), as opposed to faults of the schema.
pub fn is_unreachable(error: &StoreError) -> bool {
    let sqlx_error = match error {
        StoreError::Database(error) => error,
        StoreError::Migrate(sqlx::migrate::MigrateError::Execute(error)) => error,
        _ => return false,
    };
    match sqlx_error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        // 57P03 cannot_connect_now: the server is starting up or shutting down.
        sqlx::Error::Database(db) => db.code().as_deref() == Some("57P03"),
        _ => false,
    }
}

pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
