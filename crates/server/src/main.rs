//! `workspace-server`: parses the configuration and runs a subcommand (`serve` by default).

mod config;
mod database;
mod embedded_pg;
mod serve;
mod telemetry;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::config::{Cli, Command, Config};

// Every request allocates (headers, futures, JSON) on the runtime's threads; glibc's malloc spent
// about a tenth of the server's CPU under load, jemalloc much less (`docs/performance.md`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The git sha baked in by `build.rs` (`dev` when unknown).
pub const GIT_SHA: &str = env!("WORKSPACE_SERVER_GIT_SHA");

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    match command {
        Command::Version => {
            println!("workspace-server {} ({GIT_SHA})", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::Serve | Command::Migrate | Command::Healthcheck | Command::RotateSecretsKey => {}
    }
    if !matches!(command, Command::Healthcheck) {
        telemetry::init(cli.config.log_format);
        // Before the runtime, the database and the migrations: a misconfigured release exits
        // without touching anything.
        if let Err(error) = cli.config.validate() {
            eprintln!("workspace-server: {error:#}");
            return ExitCode::from(EXIT_PERMANENT);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("workspace-server: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match command {
            Command::Serve => Box::pin(serve::run(cli.config)).await,
            Command::Migrate => migrate(cli.config).await,
            Command::Healthcheck => healthcheck(cli.config.port).await,
            Command::RotateSecretsKey => rotate_secrets_key(cli.config).await,
            Command::Version => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line an operator can act on, with the causes after colons.
            eprintln!("workspace-server: {error:#}");
            if error.downcast_ref::<Permanent>().is_some() {
                ExitCode::from(EXIT_PERMANENT)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Exit status of a failure retrying cannot fix (the configuration, the schema): the tenant
/// entrypoint stops waiting on it.
const EXIT_PERMANENT: u8 = 2;

/// A failure retrying cannot fix.
#[derive(Debug)]
struct Permanent(String);

impl std::fmt::Display for Permanent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Permanent {}

/// `migrate`: brings the schema up to date and exits (the built-in cluster is stopped after).
async fn migrate(config: Config) -> anyhow::Result<()> {
    let database = database::Database::open(&config).await?;
    let result = store::migrate(&database.pool).await;
    database.close().await;
    result.map_err(|error| {
        let message = format!(
            "database migration failed: {}",
            database::error_chain(&error)
        );
        if database::is_unreachable(&error) {
            anyhow::anyhow!(message)
        } else {
            anyhow::Error::new(Permanent(message))
        }
    })?;
    tracing::info!("database schema is up to date");
    Ok(())
}

/// `rotate-secrets-key`: re-encrypts every secret at rest from `SECRETS_ENCRYPTION_KEY_OLD` to
/// `SECRETS_ENCRYPTION_KEY` in one transaction (`store::key_rotation`). The schema must be
/// migrated already (the command never migrates: it only touches the secrets).
async fn rotate_secrets_key(config: Config) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    let key = |value: &Option<secrecy::SecretString>| {
        value
            .as_ref()
            .map(|v| v.expose_secret().to_owned())
            .filter(|v| !v.is_empty())
    };
    let Some(new_key) = key(&config.secrets_encryption_key) else {
        return Err(anyhow::Error::new(Permanent(
            "rotate-secrets-key needs the new key in SECRETS_ENCRYPTION_KEY".into(),
        )));
    };
    let old_key = key(&config.secrets_encryption_key_old);
    let new = store::crypto::Crypto::from_env_value(Some(&new_key), false)
        .map_err(|e| anyhow::Error::new(Permanent(format!("SECRETS_ENCRYPTION_KEY: {e}"))))?;
    let old = store::crypto::Crypto::from_env_value(old_key.as_deref(), false)
        .map_err(|e| anyhow::Error::new(Permanent(format!("SECRETS_ENCRYPTION_KEY_OLD: {e}"))))?;
    let database = database::Database::open(&config).await?;
    let result = async {
        let mut conn = database.pool.acquire().await?;
        store::key_rotation::rotate(&mut conn, &old, &new).await
    }
    .await;
    database.close().await;
    let report = result.map_err(|error| match error {
        store::key_rotation::RotationError::Store(error) => anyhow::anyhow!(
            "secrets key rotation failed (nothing was changed): {}",
            database::error_chain(&error)
        ),
        other => anyhow::Error::new(Permanent(format!("secrets key rotation refused: {other}"))),
    })?;
    tracing::info!(
        reencrypted = report.reencrypted,
        encrypted_plaintext = report.encrypted_plaintext,
        already_current = report.already_current,
        "secrets re-encrypted under the new key"
    );
    println!(
        "rotate-secrets-key: {} re-encrypted, {} plaintext encrypted, {} already under the new key",
        report.reencrypted, report.encrypted_plaintext, report.already_current
    );
    Ok(())
}

/// `healthcheck`: exit 0 when `/health` on this machine's port answers 200 within 3 s.
async fn healthcheck(port: u16) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    let url = format!("http://127.0.0.1:{port}/health");
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|error| anyhow::anyhow!("GET {url}: {error}"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    Ok(())
}
