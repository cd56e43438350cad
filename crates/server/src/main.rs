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
        Command::Serve | Command::Migrate | Command::Healthcheck => {}
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
            Command::Serve => serve::run(cli.config).await,
            Command::Migrate => migrate(cli.config).await,
            Command::Healthcheck => healthcheck(cli.config.port).await,
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
