//! `eic-sim`: a local EC2 Instance Connect. See the crate docs and `--help`.

mod authkeys;
mod aws_api;
mod control_api;
mod control_plane;
mod sigv4;
mod sshd;
mod state;
mod tunnel;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::routing::{get, post};
use clap::{Args, Parser, Subcommand, ValueEnum};
use eic_sim::wire::{Faults, SimInfo, SimInstance};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::sigv4::Verifier;
use crate::state::{Instance, Sim};

/// The fixed test credentials the simulator accepts (printed in the ready line).
const ACCESS_KEY_ID: &str = "AKIAEICSIMULATOR0001";
const SECRET_ACCESS_KEY: &str = "eicsimSecretKeyForLocalTestsOnly00000000";

#[derive(Debug, Parser)]
#[command(
    name = "eic-sim",
    version,
    about = "A local EC2 Instance Connect with real OpenSSH sshd per instance"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// sshd's AuthorizedKeysCommand: print the keys pushed for INSTANCE and USER.
    AuthorizedKeys {
        /// The simulator's base URL (http://127.0.0.1:PORT).
        #[arg(long)]
        url: String,
        instance: String,
        user: String,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// An instance to simulate (repeatable), e.g. i-0123456789abcdef0.
    #[arg(long = "instance", value_name = "ID")]
    instances: Vec<String>,
    /// Where instance roots live (`DIR/<instance-id>`); it and its parents must be root-owned and
    /// not group/other-writable (sshd's ChrootDirectory rule).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Injected latencies: `aws` models real AWS (key push 300 ms, handshake 1 s, 10 ms per chunk,
    /// each EC2 `Describe` call `--describe-delay`).
    #[arg(long, value_enum, default_value = "none")]
    profile: Profile,
    /// What each EC2 `Describe` call costs under `--profile aws`.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    describe_delay: Duration,
    /// How long a pushed key authorises logins (AWS: 60 s).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    key_ttl: Duration,
    /// Loopback port of the AWS APIs, the tunnel endpoint and the control API (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Concurrent tunnels the endpoint allows (AWS: 20); more for tests of one server holding
    /// more connections than one endpoint would give it.
    #[arg(long, default_value_t = state::DEFAULT_MAX_TUNNELS)]
    max_tunnels: u64,
    /// Stop (cleanly) when stdin reaches EOF, i.e. when the parent holding the pipe dies, even
    /// by SIGKILL; `SimProcess` sets it so that a killed test leaves no sshd behind.
    #[arg(long)]
    exit_on_stdin_eof: bool,
    /// Also play the control plane (provision, stop, status, console, sessions, tenant config)
    /// on its own loopback port; provisions take the `--instance`s (see `control_plane.rs`).
    #[arg(long)]
    control_plane: bool,
    /// The control plane's port (0: any free port).
    #[arg(long, default_value_t = 0, requires = "control_plane")]
    cp_port: u16,
    /// Delay before the control plane answers any call (e.g. 2s; the "slow" fault at start).
    #[arg(long, default_value = "0ms", value_parser = parse_duration, requires = "control_plane")]
    cp_delay: Duration,
    /// A `KEY=VALUE` the control plane's `/cp/tenants/config` answers (repeatable).
    #[arg(long = "cp-config", value_name = "KEY=VALUE", value_parser = parse_key_value,
        requires = "control_plane")]
    cp_config: Vec<(String, String)>,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(key, _)| !key.is_empty())
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("bad KEY=VALUE {text:?}"))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Profile {
    None,
    Aws,
}

impl Profile {
    fn faults(self, key_ttl: Duration, describe_delay: Duration) -> Faults {
        let key_ttl_ms = u64::try_from(key_ttl.as_millis()).unwrap_or(u64::MAX);
        let describe_delay_ms = u64::try_from(describe_delay.as_millis()).unwrap_or(u64::MAX);
        match self {
            Profile::None => Faults {
                key_ttl_ms,
                describe_delay_ms: 0,
                ..Faults::default()
            },
            // The original's own figures (`handlers/template_files_eic.go:113-117` at 624ef4d0):
            // key push under 500 ms, tunnel 1-2 s; 10 ms per relayed chunk each way.
            Profile::Aws => Faults {
                refuse_tunnels: false,
                key_push_delay_ms: 300,
                handshake_delay_ms: 1000,
                chunk_latency_ms: 10,
                key_ttl_ms,
                // An EC2 Query API call from inside the region: about 100 ms.
                describe_delay_ms,
                endpoint_pages: 1,
            },
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |at| text.split_at(at));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("bad duration {text:?} (use e.g. 500ms, 60s, 2m)")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::AuthorizedKeys {
        url,
        instance,
        user,
    }) = cli.command
    {
        return match authkeys::run(&url, &instance, &user) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("eic-sim authorized-keys: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "eic_sim=info".into()),
        )
        .init();
    match serve(cli.serve).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("eic-sim: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The `--instance` ids, deduplicated, each a valid instance id, at most 254 (one private IP
/// each in `127.0.1.0/24`).
fn instance_ids(args: &ServeArgs) -> anyhow::Result<Vec<String>> {
    let mut ids = args.instances.clone();
    ids.dedup();
    if ids.is_empty() {
        bail!("give at least one --instance i-…");
    }
    if let Some(bad) = ids.iter().find(|id| !aws_api::is_instance_id(id)) {
        bail!("--instance {bad}: must match ^i-[a-f0-9]+$ with 10-32 characters");
    }
    if ids.len() > 254 {
        bail!("at most 254 instances");
    }
    Ok(ids)
}

/// What [`start_instances`] needs from the simulator's setup.
struct InstancesSpec<'a> {
    root: &'a std::path::Path,
    private_dir: &'a std::path::Path,
    authorized_keys_command: &'a std::path::Path,
    user: &'a sshd::LoginUser,
}

/// Prepares each instance's root and starts its sshd: the simulator's instances, and what the
/// ready line says about each.
async fn start_instances(
    ids: &[String],
    spec: InstancesSpec<'_>,
) -> anyhow::Result<(BTreeMap<String, Instance>, BTreeMap<String, SimInstance>)> {
    let mut instances = BTreeMap::new();
    let mut ready = BTreeMap::new();
    for (n, id) in ids.iter().enumerate() {
        let instance_root = sshd::prepare_instance_root(spec.root, id, spec.user)?;
        let mut sshd = sshd::Sshd::create(sshd::SshdSpec {
            instance_id: id,
            instance_root: &instance_root,
            private_dir: spec.private_dir,
            authorized_keys_command: spec.authorized_keys_command,
            user: spec.user,
        })
        .await?;
        sshd.start().await?;
        let private_ip = format!("127.0.1.{}", n + 1);
        ready.insert(
            id.clone(),
            SimInstance {
                root: instance_root,
                ssh_port: sshd.port(),
                private_ip: private_ip.clone(),
            },
        );
        instances.insert(
            id.clone(),
            Instance {
                id: id.clone(),
                private_ip,
                ssh_port: sshd.port(),
                sshd: tokio::sync::Mutex::new(sshd),
            },
        );
    }
    Ok((instances, ready))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let ids = instance_ids(&args)?;
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "eic-sim must run as root: sshd's ChrootDirectory and the per-instance login need it \
             (run it with sudo)"
        );
    }
    let signals = install_signal_handlers()?;
    let root = args.root.as_deref().context("--root DIR is required")?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
    let endpoint_dns = listener.local_addr()?.to_string();
    let url = format!("http://{endpoint_dns}");
    let sshd_setup = SshdSetup::prepare(root, &url).await?;
    let (instances, ready) = start_instances(&ids, sshd_setup.spec()).await?;
    let user = &sshd_setup.user;

    let shutdown = CancellationToken::new();
    let verifier = Verifier {
        access_key_id: ACCESS_KEY_ID.into(),
        secret_access_key: SECRET_ACCESS_KEY.into(),
        region: args.region.clone(),
    };
    let sim = Arc::new(
        Sim::new(
            verifier,
            args.region.clone(),
            endpoint_dns,
            instances,
            args.profile.faults(args.key_ttl, args.describe_delay),
            shutdown.clone(),
        )
        .with_max_tunnels(args.max_tunnels),
    );
    let mut app = Router::new()
        .route("/", post(aws_api::handle))
        .route("/openTunnel", get(tunnel::open_tunnel))
        .merge(control_api::routes())
        .with_state(sim.clone());
    let mut control_plane_url = None;
    if args.control_plane {
        let cp_listener = tokio::net::TcpListener::bind(("127.0.0.1", args.cp_port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.cp_port))?;
        control_plane_url = Some(format!("http://{}", cp_listener.local_addr()?));
        let delay_ms = u64::try_from(args.cp_delay.as_millis()).unwrap_or(u64::MAX);
        let cp = control_plane::ControlPlane::new(
            sim.clone(),
            args.cp_config.iter().cloned().collect(),
            eic_sim::CpFaults {
                delay_ms,
                ..Default::default()
            },
            shutdown.clone(),
        );
        app = app.merge(control_plane::control_routes(cp.clone()));
        tokio::spawn(control_plane::serve(cp, cp_listener, shutdown.clone()));
    }
    print_ready_line(&SimInfo {
        aws_endpoint_url: url,
        region: args.region.clone(),
        access_key_id: ACCESS_KEY_ID.into(),
        secret_access_key: SECRET_ACCESS_KEY.into(),
        os_user: user.name.clone(),
        instances: ready,
        control_plane_url,
    })?;
    tracing::info!(profile = ?args.profile, "eic-sim ready at http://{}", sim.endpoint_dns);

    tokio::spawn(cancel_on_signal(signals, shutdown.clone()));
    if args.exit_on_stdin_eof {
        let shutdown = shutdown.clone();
        std::thread::spawn(move || cancel_on_stdin_eof(shutdown));
    }
    serve_until_shutdown(listener, app, &shutdown).await?;
    for instance in sim.instances.values() {
        instance.sshd.lock().await.stop().await;
    }
    tracing::info!("eic-sim stopped");
    drop(sshd_setup);
    Ok(())
}

/// What every instance's sshd shares: the instances' root, the login user, and a private
/// directory (host keys, configs, the AuthorizedKeysCommand wrapper) removed on drop.
struct SshdSetup {
    root: std::path::PathBuf,
    user: sshd::LoginUser,
    private_dir: tempfile::TempDir,
    authorized_keys_command: std::path::PathBuf,
}

impl SshdSetup {
    async fn prepare(root: &std::path::Path, sim_url: &str) -> anyhow::Result<SshdSetup> {
        let root = sshd::prepare_root(root)?;
        let user = sshd::ensure_login_user().await?;
        // sshd's privilege separation directory (absent when sshd was never started by systemd).
        std::fs::create_dir_all("/run/sshd").context("cannot create /run/sshd")?;
        // Inside `root` because sshd checks the wrapper's parents like the chroot's (so not /tmp).
        let private_dir = tempfile::Builder::new()
            .prefix(".eic-sim-")
            .tempdir_in(&root)
            .context("cannot create the simulator's private directory")?;
        std::fs::set_permissions(private_dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let authorized_keys_command =
            sshd::write_authorized_keys_command(private_dir.path(), sim_url)?;
        Ok(SshdSetup {
            root,
            user,
            private_dir,
            authorized_keys_command,
        })
    }

    fn spec(&self) -> InstancesSpec<'_> {
        InstancesSpec {
            root: &self.root,
            private_dir: self.private_dir.path(),
            authorized_keys_command: &self.authorized_keys_command,
            user: &self.user,
        }
    }
}

/// The one JSON line on stdout that callers wait for (`SimProcess::spawn` parses it).
fn print_ready_line(info: &SimInfo) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", serde_json::to_string(info)?)?;
    stdout.flush()?;
    Ok(())
}

/// Serves the AWS APIs, the tunnel and the control API until `shutdown` is cancelled.
async fn serve_until_shutdown(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    // The tunnel relays small SSH packets both ways: Nagle's algorithm would hold each one back
    // until the previous is acknowledged (the pool's side disables it too).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::warn!(error = %err, "cannot set TCP_NODELAY");
        }
    });
    let server =
        axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    tokio::select! {
        result = server => result.context("the HTTP server failed")?,
        // Idle keep-alive clients must not hold the exit.
        () = async { shutdown.cancelled().await; tokio::time::sleep(Duration::from_secs(5)).await } => {}
    }
    Ok(())
}

/// Installed before anything is started: SIGTERM's default action would kill the simulator
/// without stopping its sshds.
fn install_signal_handlers() -> anyhow::Result<(Signal, Signal)> {
    let term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok((term, int))
}

async fn cancel_on_signal((mut term, mut int): (Signal, Signal), shutdown: CancellationToken) {
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    shutdown.cancel();
}

/// A plain thread: blocking stdin reads cannot be cancelled, and it ends with the process.
fn cancel_on_stdin_eof(shutdown: CancellationToken) {
    use std::io::Read;
    let mut buf = [0u8; 64];
    while let Ok(1..) = std::io::stdin().read(&mut buf) {}
    tracing::info!("stdin closed: stopping");
    shutdown.cancel();
}
