//! EC2 Instance Connect, natively: an in-memory key, discovery, the key push, a SigV4-presigned
//! WebSocket tunnel, a russh session over it, SFTP file operations, and a keyed pool of
//! authenticated connections with leases that release on `Drop`.
//!
//! Public surface used by the API layer (keep it stable; other crates build against it):
//! [`EicConfig`] (with optional explicit [`AwsSettings`]), [`EicPool`] with `read_file` /
//! `write_file` / `delete_file` / `list_dir` / `operation_timeout`, [`RemoteEntry`], [`EicError`],
//! [`Step`], and [`HISTOGRAM_BUCKETS`] for the metrics exporter.
//!
//! Host keys are trusted on first use: the first key an instance presents is recorded for the
//! life of the process and a different key later is refused (the Go original accepted any key).
//!
//! Code map: [`pool`] is the generic keyed pool (no AWS, no SSH); `eic` builds connections;
//! `sftp` runs the file operations on a pooled connection.

mod eic;
mod error;
mod metrics;
pub mod pool;
mod sftp;
mod shell;

pub use crate::metrics::{HISTOGRAM_BUCKETS, describe as describe_metrics};
pub use eic::DiagnoseStep;
pub use error::{Cause, EicError, Step};
pub use pool::PoolStatus;
pub use shell::{Shell, ShellEvent, ShellSize};

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tokio::time::Instant;
use tracing::Instrument;

use crate::eic::EicConnector;
use crate::pool::{AcquireError, InstanceId, Pool, PoolConfig};
use crate::sftp::RemoteFs;

/// The longest tunnel an EIC Endpoint allows.
const MAX_TUNNEL_DURATION: Duration = Duration::from_secs(3600);
/// Slack between a connection's recycle age (plus one operation) and its tunnel's end.
const TUNNEL_DURATION_MARGIN: Duration = Duration::from_secs(60);

/// Settings of the EIC path, parsed once by the server.
#[derive(Debug, Clone)]
pub struct EicConfig {
    /// AWS region, used when the environment (`AWS_REGION`, profile) names none.
    pub region: String,
    /// Login user on the instances (`WORKSPACE_EC2_OS_USER`, default `ubuntu`).
    pub os_user: String,
    /// Command that runs the SFTP server on a channel (`EIC_SFTP_COMMAND`).
    pub sftp_command: String,
    /// Per-operation budget, connection setup included; the API answers 504 past it.
    pub operation_timeout: Duration,
    /// Budget of each setup step (discovery, key push, tunnel, SSH, SFTP start).
    pub step_timeout: Duration,
    /// Close a connection unused for this long.
    pub idle_timeout: Duration,
    /// Recycle every connection before the tunnel's maximum duration (3600 s).
    pub max_lifetime: Duration,
    /// Idle connections kept at most (`EIC_POOL_MAX_INSTANCES`), least recently used closed first.
    pub max_instances: usize,
    /// Concurrent tunnels at most, across all instances (an endpoint allows 20).
    pub max_tunnels: usize,
    /// File operations in flight at most on one connection (`EIC_MAX_OPS_PER_CONNECTION`). They
    /// all share the connection's one SFTP channel, whose requests are pipelined by id; the cap
    /// bounds the requests queued on that channel and on the instance's `sftp-server`, not a
    /// number of SSH channels. Default 32: with AWS-like latency, throughput grows linearly with
    /// the operations in flight up to 32 (`cargo bench --bench eic`, figure 5).
    pub max_ops_per_connection: usize,
    /// Terminal shells at most on one connection: sshd's `MaxSessions` (10 by default) counts
    /// the SFTP channel too.
    pub max_shells_per_connection: usize,
    /// A new shell opens only on a connection whose tunnel has at least this long left; an
    /// older connection is replaced (it finishes its operations and closes).
    pub shell_min_remaining: Duration,
    /// How long before its tunnel ends a shell is told that it will end.
    pub shell_end_warning: Duration,
    /// EIC Endpoint id; with `endpoint_dns`, skips `DescribeInstanceConnectEndpoints`.
    pub endpoint_id: Option<String>,
    /// EIC Endpoint DNS name (`host[:port]`); with `endpoint_id`, skips the endpoint lookup.
    pub endpoint_dns: Option<String>,
    /// Private IP per instance id; with the endpoint configured too, discovery makes no EC2 call
    /// for that instance.
    pub instance_ips: std::collections::HashMap<String, String>,
    /// Explicit AWS endpoint, region and credentials (a simulator, a test). `None`: the SDK's
    /// standard environment and credential chain (`AWS_REGION`, `AWS_ENDPOINT_URL`, profiles,
    /// instance role ...).
    pub aws: Option<AwsSettings>,
}

/// Explicit AWS settings, used instead of the process environment by both the SDK client (key
/// push) and the signed EC2 Query calls (discovery). `Debug` shows the secret key as
/// `[REDACTED]`.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// Endpoint of every AWS API used (`http://127.0.0.1:PORT` for eic-sim); `None`: AWS's own.
    pub endpoint_url: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
}

impl Default for EicConfig {
    fn default() -> Self {
        Self {
            region: "us-east-2".into(),
            os_user: "ubuntu".into(),
            sftp_command: "sudo -n /usr/lib/openssh/sftp-server".into(),
            operation_timeout: Duration::from_secs(30),
            step_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_lifetime: Duration::from_secs(3300),
            max_instances: 32,
            max_tunnels: 16,
            max_ops_per_connection: 32,
            max_shells_per_connection: 8,
            shell_min_remaining: Duration::from_secs(1800),
            shell_end_warning: Duration::from_secs(300),
            endpoint_id: None,
            endpoint_dns: None,
            instance_ips: std::collections::HashMap::new(),
            aws: None,
        }
    }
}

impl EicConfig {
    /// Defaults overridden by the environment: `AWS_REGION`, `WORKSPACE_EC2_OS_USER`,
    /// `EIC_SFTP_COMMAND`, `EIC_POOL_MAX_INSTANCES`, `EIC_ENDPOINT_ID`, `EIC_ENDPOINT_DNS`.
    pub fn from_env() -> Result<Self, EicError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut config = Self::default();
        if let Some(region) = var("AWS_REGION") {
            config.region = region;
        }
        if let Some(user) = var("WORKSPACE_EC2_OS_USER") {
            config.os_user = user;
        }
        if let Some(command) = var("EIC_SFTP_COMMAND") {
            config.sftp_command = command;
        }
        if let Some(max) = var("EIC_POOL_MAX_INSTANCES") {
            config.max_instances = max.parse().map_err(|_| {
                EicError::InvalidConfig(format!("EIC_POOL_MAX_INSTANCES={max:?} is not a count"))
            })?;
        }
        config.endpoint_id = var("EIC_ENDPOINT_ID");
        config.endpoint_dns = var("EIC_ENDPOINT_DNS");
        Ok(config)
    }

    /// The `maxTunnelDuration` sent on `openTunnel` (an IAM policy may cap it with the
    /// `ec2-instance-connect:maxTunnelDuration` condition, and then the parameter must be
    /// present): long enough for a connection to reach its recycle age and finish an operation
    /// started just before, never more than the endpoint's 3600 s.
    pub fn max_tunnel_duration(&self) -> Duration {
        let wanted = self.max_lifetime + self.operation_timeout + TUNNEL_DURATION_MARGIN;
        let seconds = wanted.as_secs() + u64::from(wanted.subsec_nanos() > 0);
        Duration::from_secs(seconds.clamp(1, MAX_TUNNEL_DURATION.as_secs()))
    }

    fn validate(&self) -> Result<(), EicError> {
        let invalid = |what: &str| Err(EicError::InvalidConfig(what.to_owned()));
        if self.max_ops_per_connection == 0 || self.max_tunnels == 0 {
            return invalid("channel and tunnel caps must be at least 1");
        }
        if self.max_lifetime > MAX_TUNNEL_DURATION {
            return invalid("max_lifetime must stay under the tunnel's 3600 s maximum");
        }
        if self.os_user.is_empty() || self.sftp_command.is_empty() {
            return invalid("os_user and sftp_command must not be empty");
        }
        Ok(())
    }
}

/// One entry of a remote directory listing, relative to the listed directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEntry {
    pub path: String,
    pub size: u64,
    pub dir: bool,
}

/// Remote file operations on EC2 instances over pooled EIC connections. Cheap to clone.
///
/// Construction is lazy: no AWS call and no connection until the first operation.
#[derive(Clone)]
pub struct EicPool {
    pool: Pool<EicConnector>,
    config: Arc<EicConfig>,
    orphans: Arc<Orphans>,
    shells: Arc<shell::ShellCount>,
}

/// Temporary files of writes that a broken connection cut off (their own cleanup could not
/// reach the instance either), per instance id: removed on that instance's next lease.
#[derive(Debug, Default)]
struct Orphans(std::sync::Mutex<std::collections::HashMap<String, Vec<String>>>);

/// Temporary files remembered per instance at most; older ones are forgotten (left on the
/// instance, logged) so a host that never comes back cannot grow the map without bound.
const MAX_ORPHANS_PER_INSTANCE: usize = 64;
/// Instances with remembered temporary files at most.
const MAX_ORPHAN_INSTANCES: usize = 1024;

impl Orphans {
    fn add(&self, instance_id: &str, path: String) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !map.contains_key(instance_id) && map.len() >= MAX_ORPHAN_INSTANCES {
            tracing::warn!(
                instance_id,
                path,
                "too many instances with temporary files; not remembered"
            );
            return;
        }
        let paths = map.entry(instance_id.to_owned()).or_default();
        if paths.len() >= MAX_ORPHANS_PER_INSTANCE {
            let forgotten = paths.remove(0);
            tracing::warn!(
                instance_id,
                path = forgotten,
                "temporary file forgotten: too many on one instance"
            );
        }
        paths.push(path);
    }

    fn take(&self, instance_id: &str) -> Vec<String> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(instance_id).unwrap_or_default()
    }

    /// The temporary file of a write about to start: remembered as an orphan when the write
    /// ends in a transport fault or is cut off by its deadline.
    fn pending<'a>(&'a self, instance_id: &'a str, path: String) -> PendingTemp<'a> {
        PendingTemp {
            orphans: self,
            instance_id,
            path,
            settled: false,
        }
    }
}

/// A write's temporary file until the write is over (see [`Orphans::pending`]).
struct PendingTemp<'a> {
    orphans: &'a Orphans,
    instance_id: &'a str,
    path: String,
    settled: bool,
}

impl PendingTemp<'_> {
    fn path(&self) -> &str {
        &self.path
    }

    /// The write answered: renamed into place, or removed by the write itself, unless the
    /// connection broke.
    fn settle<T>(mut self, result: &Result<T, EicError>) {
        self.settled = !result.as_ref().is_err_and(EicError::is_transport);
    }
}

impl Drop for PendingTemp<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.orphans
                .add(self.instance_id, std::mem::take(&mut self.path));
        }
    }
}

impl std::fmt::Debug for EicPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EicPool")
            .field("status", &self.pool.status())
            .finish()
    }
}

impl EicPool {
    /// Takes the AWS settings from `config.aws`, or else from the standard environment, and
    /// starts the pool's reaper.
    pub async fn new(config: EicConfig) -> Result<Self, EicError> {
        config.validate()?;
        crate::metrics::describe();
        let config = Arc::new(config);
        let connector = EicConnector::new(config.clone()).await?;
        let pool = Pool::new(
            connector,
            PoolConfig {
                idle_timeout: config.idle_timeout,
                max_lifetime: config.max_lifetime,
                max_connections: config.max_instances,
                max_tunnels: config.max_tunnels,
                max_ops_per_connection: config.max_ops_per_connection,
                max_shells_per_connection: config.max_shells_per_connection,
                shell_max_age: config
                    .max_tunnel_duration()
                    .saturating_sub(config.shell_min_remaining),
            },
        );
        Ok(Self {
            pool,
            config,
            orphans: Arc::default(),
            shells: Arc::default(),
        })
    }

    /// An interactive shell (PTY `xterm-256color`) on the instance's pooled connection, as
    /// `os_user`: warm, one channel open and one round trip; cold, the connection's setup first.
    /// It holds a shell slot, not an operation slot, for as long as it is open.
    pub async fn open_shell(&self, instance_id: &str, size: ShellSize) -> Result<Shell, EicError> {
        let span = tracing::info_span!("eic.shell", instance.id = instance_id);
        async {
            let deadline = Instant::now() + self.config.operation_timeout;
            let instance = InstanceId::new(instance_id);
            match self.try_open_shell(&instance, size, deadline).await {
                // A pooled connection that died unnoticed is poisoned by now: one more try
                // builds a fresh one.
                Err(err) if err.is_transport() && Instant::now() < deadline => {
                    tracing::debug!(error = %err, "shell open failed on a stale connection; retrying");
                    self.try_open_shell(&instance, size, deadline).await
                }
                result => result,
            }
        }
        .instrument(span)
        .await
    }

    async fn try_open_shell(
        &self,
        instance: &InstanceId,
        size: ShellSize,
        deadline: Instant,
    ) -> Result<Shell, EicError> {
        let lease = match tokio::time::timeout_at(deadline, self.pool.acquire_shell(instance)).await
        {
            Err(_) => {
                return Err(EicError::Timeout {
                    step: Step::Operation,
                });
            }
            Ok(Err(err)) => return Err(acquire_error(err)),
            Ok(Ok(lease)) => lease,
        };
        let ends_at = lease.built_at() + self.config.max_tunnel_duration();
        let opening = Shell::open(lease, size, ends_at, &self.shells);
        let limit = deadline.min(Instant::now() + self.config.step_timeout);
        match tokio::time::timeout_at(limit, opening).await {
            Err(_) => Err(EicError::Timeout { step: Step::Shell }),
            Ok(result) => result,
        }
    }

    /// The setup steps run one by one on a connection of their own (closed at the end), each
    /// timed: the passed steps plus the first failing one.
    pub async fn diagnose(&self, instance_id: &str) -> Vec<DiagnoseStep> {
        self.pool
            .connector()
            .diagnose(&InstanceId::new(instance_id))
            .await
    }

    /// Shells open now.
    pub fn open_shells(&self) -> usize {
        self.shells.get()
    }

    /// How long before its end a shell is warned (`EicConfig::shell_end_warning`).
    pub fn shell_end_warning(&self) -> Duration {
        self.config.shell_end_warning
    }

    /// The file's bytes. `NotFound` when missing, `TooLarge` when bigger than `max_bytes`.
    pub async fn read_file(
        &self,
        instance_id: &str,
        path: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, EicError> {
        self.run("read", instance_id, || {
            async |fs: &RemoteFs| fs.read(path, max_bytes).await
        })
        .await
    }

    /// Writes atomically (temporary sibling renamed over the target), mode 0644, parents created.
    pub async fn write_file(
        &self,
        instance_id: &str,
        path: &str,
        contents: &[u8],
    ) -> Result<(), EicError> {
        self.run("write", instance_id, || {
            async |fs: &RemoteFs| {
                // A fresh name per attempt: the temporary file is created exclusively.
                let temp = self
                    .orphans
                    .pending(instance_id, sftp::temp_path_for(path)?);
                let result = fs.write(path, temp.path(), contents).await;
                temp.settle(&result);
                result
            }
        })
        .await
    }

    /// Removes a file; a missing file is not an error.
    pub async fn delete_file(&self, instance_id: &str, path: &str) -> Result<(), EicError> {
        self.run("delete", instance_id, || {
            async |fs: &RemoteFs| fs.delete(path).await
        })
        .await
    }

    /// Replaces the directory `dir` with exactly `files` (paths relative to it, validated by the
    /// caller): written into a temporary sibling, then renamed into place, so the directory
    /// appears whole or not at all. Writes are pipelined on the connection's SFTP session.
    pub async fn write_tree(
        &self,
        instance_id: &str,
        dir: &str,
        files: &[(String, bytes::Bytes)],
    ) -> Result<(), EicError> {
        self.run("write_tree", instance_id, || {
            async |fs: &RemoteFs| {
                // Fresh names per attempt: a retried write never meets the first one's leftovers.
                let temp = sftp::temp_path_for(dir)?;
                let old = sftp::temp_path_for(dir)?.replace(".tmp-", ".old-");
                fs.write_tree(dir, &temp, &old, files).await
            }
        })
        .await
    }

    /// Removes the directory `dir` and everything under it (symlinks are removed, never
    /// followed); `false` when it did not exist.
    pub async fn remove_tree(&self, instance_id: &str, dir: &str) -> Result<bool, EicError> {
        self.run("remove_tree", instance_id, || {
            async |fs: &RemoteFs| fs.remove_tree(dir).await
        })
        .await
    }

    /// Entries under `path` to `depth` levels (paths relative to `path`), without `.git`,
    /// `__pycache__`, `node_modules` and `.DS_Store`. A missing directory gives `[]`.
    pub async fn list_dir(
        &self,
        instance_id: &str,
        path: &str,
        depth: u32,
    ) -> Result<Vec<RemoteEntry>, EicError> {
        self.run("list", instance_id, || {
            async |fs: &RemoteFs| fs.list(path, depth).await
        })
        .await
    }

    /// Budget of one operation, connection setup included (`EicConfig::operation_timeout`).
    pub fn operation_timeout(&self) -> Duration {
        self.config.operation_timeout
    }

    pub fn status(&self) -> PoolStatus {
        self.pool.status()
    }

    /// Refuses new operations and closes idle connections (call on shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Leases the instance's connection and runs one operation on it, all within
    /// `operation_timeout`; a transport fault poisons the connection. When the fault hit a
    /// pooled connection (built before the call: its tunnel may have died unnoticed while idle),
    /// the operation is tried once more on a fresh one, `operation` making it anew. Every
    /// operation is safe to repeat (reads, deletes, writes by rename); a fault on a connection
    /// built for this call is not retried.
    async fn run<T, Op>(
        &self,
        kind: &'static str,
        instance_id: &str,
        operation: impl Fn() -> Op,
    ) -> Result<T, EicError>
    where
        Op: AsyncFnOnce(&RemoteFs) -> Result<T, EicError>,
    {
        let span = tracing::info_span!("eic.operation", instance.id = instance_id, kind);
        async {
            let started = Instant::now();
            let deadline = started + self.config.operation_timeout;
            let instance = InstanceId::new(instance_id);
            let result = match self.attempt(&instance, deadline, operation()).await {
                (Err(err), Some(built_at))
                    if err.is_transport() && built_at < started && Instant::now() < deadline =>
                {
                    tracing::debug!(error = %err, "operation failed on a stale connection; retrying");
                    self.attempt(&instance, deadline, operation()).await.0
                }
                (result, _) => result,
            };
            metrics::operation(kind, outcome(&result), started.elapsed());
            if let Err(err) = &result {
                tracing::debug!(error = %err, cause = ?std::error::Error::source(err), "EIC operation failed");
            }
            result
        }
        .instrument(span)
        .await
    }

    /// One try of `run`: its result, and when the leased connection was built (`None` when
    /// none was leased).
    async fn attempt<T>(
        &self,
        instance: &InstanceId,
        deadline: Instant,
        operation: impl AsyncFnOnce(&RemoteFs) -> Result<T, EicError>,
    ) -> (Result<T, EicError>, Option<Instant>) {
        let lease = match tokio::time::timeout_at(deadline, self.pool.acquire(instance)).await {
            Err(_) => {
                let step = Step::Operation;
                return (Err(EicError::Timeout { step }), None);
            }
            Ok(Err(err)) => return (Err(acquire_error(err)), None),
            Ok(Ok(lease)) => lease,
        };
        let running = lease.fs.once_started(async {
            self.remove_orphans(instance.as_str(), &lease.fs).await;
            operation(&lease.fs).await
        });
        let result = match tokio::time::timeout_at(deadline, running).await {
            Err(_) => Err(EicError::Timeout { step: Step::Sftp }),
            Ok(result) => result,
        };
        if result.as_ref().is_err_and(EicError::is_transport) {
            lease.poison();
        }
        (result, Some(lease.built_at()))
    }
}

impl EicPool {
    /// Removes the temporary files broken writes left on this instance (one round trip each,
    /// only after such a fault); those it cannot reach yet are kept for the next lease.
    async fn remove_orphans(&self, instance_id: &str, fs: &RemoteFs) {
        for temp in self.orphans.take(instance_id) {
            match fs.delete(&temp).await {
                Ok(()) => {
                    tracing::info!(file = temp, "removed the temporary file of a broken write")
                }
                Err(err) if err.is_transport() => self.orphans.add(instance_id, temp),
                Err(err) => {
                    tracing::warn!(error = %err, file = temp, "could not remove a temporary file")
                }
            }
        }
    }
}

fn acquire_error(err: AcquireError<EicError>) -> EicError {
    match err {
        AcquireError::Setup(err) => err,
        AcquireError::SetupAborted => EicError::SetupAborted,
        AcquireError::Closed => EicError::Closed,
        AcquireError::ShellsFull(max) => EicError::ShellsFull { max },
    }
}

fn outcome<T>(result: &Result<T, EicError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(EicError::NotFound) => "not_found",
        Err(EicError::PermissionDenied) => "permission_denied",
        Err(EicError::TooLarge { .. }) => "too_large",
        Err(_) => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tunnel_outlives_the_recycle_age_but_not_the_endpoint_limit() {
        let defaults = EicConfig::default();
        assert_eq!(defaults.max_tunnel_duration(), Duration::from_secs(3390));
        let longest = EicConfig {
            max_lifetime: Duration::from_secs(3600),
            ..EicConfig::default()
        };
        assert_eq!(longest.max_tunnel_duration(), Duration::from_secs(3600));
        // A policy capping tunnels at 30 min is met by recycling at 25 min.
        let capped = EicConfig {
            max_lifetime: Duration::from_secs(1500),
            operation_timeout: Duration::from_millis(29_500),
            ..EicConfig::default()
        };
        assert_eq!(capped.max_tunnel_duration(), Duration::from_secs(1590));
    }

    #[test]
    fn explicit_settings_never_print_the_secret() {
        let settings = AwsSettings {
            endpoint_url: None,
            region: "us-east-1".into(),
            access_key_id: "AKIA".into(),
            secret_access_key: "very-secret".into(),
        };
        let printed = format!(
            "{:?}",
            EicConfig {
                aws: Some(settings),
                ..EicConfig::default()
            }
        );
        assert!(
            printed.contains("AKIA") && !printed.contains("very-secret"),
            "{printed}"
        );
    }
}

#[cfg(test)]
mod orphan_tests {
    use super::*;

    #[test]
    fn the_orphan_map_is_bounded() {
        let orphans = Orphans::default();
        for n in 0..MAX_ORPHANS_PER_INSTANCE + 5 {
            orphans.add("i-1", format!("/tmp/{n}"));
        }
        let kept = orphans.take("i-1");
        assert_eq!(kept.len(), MAX_ORPHANS_PER_INSTANCE);
        assert_eq!(kept[0], "/tmp/5", "the oldest are forgotten");
        for n in 0..MAX_ORPHAN_INSTANCES + 1 {
            orphans.add(&format!("i-{n}"), "/tmp/x".into());
        }
        assert!(
            orphans
                .take(&format!("i-{MAX_ORPHAN_INSTANCES}"))
                .is_empty()
        );
        assert_eq!(orphans.take("i-0"), ["/tmp/x"]);
    }
}
