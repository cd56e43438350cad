//! The EC2 Instance Connect connector: builds one authenticated SSH connection (with its SFTP
//! session) to an instance, natively: no subprocess, no key on disk.
//!
//! ```text
//! key push (SendSSHPublicKey) ───────────────────────────────┐
//! discovery (cached) ─> WebSocket (openTunnel) ─> SSH kex ────┴─> auth ─> channel, exec ─> init
//! ```
//! The key push overlaps discovery, the tunnel handshake and the key exchange; only the
//! authentication waits for it. The SFTP `init` is answered together with the first operation
//! (see `sftp`). Every step has its own timeout, error variant and span.
//!
//! Round trips after the WebSocket opens, for a cold read: the server's version, the key
//! exchange, the `ssh-userauth` service request, russh's public key probe (russh 0.65.1 has no
//! way to send the signed request directly), the signed request, the channel open (see `ssh::open_first_channel`), the `exec`
//! (sshd opens the channel's window only then), `init` + `open`, then `fstat` + `read`.

mod aws;
mod diagnose;
mod sftp_channel;
mod ssh;
mod tunnel;
mod xml;

pub use diagnose::DiagnoseStep;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use russh::keys::{Algorithm, PrivateKey};
use tracing::Instrument;

use crate::error::{cause, cause_msg};
use crate::pool::{Connector, InstanceId};
use crate::sftp::RemoteFs;
use crate::{EicConfig, EicError, Step, metrics};

use self::aws::{Aws, Target};
use self::ssh::{KnownHosts, SshHandle};

/// One pooled connection: the SSH session and the SFTP session on one of its channels.
pub(crate) struct EicConnection {
    ssh: SshHandle,
    pub(crate) fs: RemoteFs,
}

impl EicConnection {
    /// Whether the SSH transport is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.ssh.is_closed()
    }

    /// A session channel with a PTY and a login shell. Both requests go out together and their
    /// replies are awaited together: one round trip after the channel opens.
    pub(crate) async fn open_shell_channel(
        &self,
        size: crate::ShellSize,
    ) -> Result<russh::Channel<russh::client::Msg>, EicError> {
        open_shell_channel(&self.ssh, size).await
    }
}

/// See [`EicConnection::open_shell_channel`].
async fn open_shell_channel(
    handle: &SshHandle,
    size: crate::ShellSize,
) -> Result<russh::Channel<russh::client::Msg>, EicError> {
    let ssh = |e: russh::Error| EicError::Ssh { source: cause(e) };
    let mut channel = handle.channel_open_session().await.map_err(ssh)?;
    channel
        .request_pty(true, crate::shell::TERM, size.cols, size.rows, 0, 0, &[])
        .await
        .map_err(ssh)?;
    channel.request_shell(true).await.map_err(ssh)?;
    let mut granted = 0;
    while granted < 2 {
        match channel.wait().await {
            Some(russh::ChannelMsg::Success) => granted += 1,
            Some(russh::ChannelMsg::Failure) => {
                let what = if granted == 0 { "a PTY" } else { "a shell" };
                return Err(EicError::Shell {
                    source: cause_msg(format!("sshd refused {what} on the instance")),
                });
            }
            Some(_) => {}
            None => {
                return Err(EicError::Ssh {
                    source: cause_msg("the channel closed before the shell started"),
                });
            }
        }
    }
    Ok(channel)
}

/// Builds [`EicConnection`]s; shared by the pool's setups.
pub(crate) struct EicConnector {
    config: Arc<EicConfig>,
    aws: Aws,
    targets: Mutex<HashMap<InstanceId, Target>>,
    known_hosts: Arc<KnownHosts>,
}

impl EicConnector {
    pub(crate) async fn new(config: Arc<EicConfig>) -> Result<Self, EicError> {
        let aws = Aws::new(&config).await?;
        Ok(Self {
            config,
            aws,
            targets: Mutex::default(),
            known_hosts: Arc::default(),
        })
    }

    /// Discovery, cached per instance (an instance keeps its address while it runs).
    async fn target(&self, instance: &InstanceId) -> Result<Target, EicError> {
        if let Some(target) = self.cached_target(instance) {
            return Ok(target);
        }
        let target = self.aws.discover(instance.as_str(), &self.config).await?;
        self.lock_targets().insert(instance.clone(), target.clone());
        Ok(target)
    }

    fn cached_target(&self, instance: &InstanceId) -> Option<Target> {
        self.lock_targets().get(instance).cloned()
    }

    fn lock_targets(&self) -> std::sync::MutexGuard<'_, HashMap<InstanceId, Target>> {
        self.targets.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn build(&self, instance: &InstanceId) -> Result<EicConnection, EicError> {
        let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
            .map_err(|e| EicError::Ssh { source: cause(e) })?;
        let public_key = key
            .public_key()
            .to_openssh()
            .map_err(|e| EicError::Ssh { source: cause(e) })?;

        let push = self.step(
            Step::KeyPush,
            self.aws
                .push_key(instance.as_str(), &self.config.os_user, &public_key),
        );
        let session = Box::pin(async {
            let target = self.step(Step::Discovery, self.target(instance)).await?;
            let stream = self.step(Step::Tunnel, self.open_tunnel(&target)).await?;
            // The key exchange and the authentication below are one `ssh` step in the metrics.
            self.step_part(
                Step::Ssh,
                ssh::handshake(stream, instance, &self.known_hosts),
            )
            .await
        });
        let ((), mut handle) = tokio::try_join!(push, session)?;
        self.step(
            Step::Ssh,
            ssh::authenticate(&mut handle, &self.config.os_user, key),
        )
        .await?;
        let fs = self.step(Step::Sftp, self.start_sftp(&handle)).await?;
        Ok(EicConnection { ssh: handle, fs })
    }

    async fn open_tunnel(
        &self,
        target: &Target,
    ) -> Result<tunnel::TunnelStream<tunnel::Ws>, EicError> {
        let credentials = self
            .aws
            .credentials()
            .await
            .map_err(|e| EicError::Tunnel { source: cause(e) })?;
        let url = aws::presign_tunnel_url(
            credentials,
            self.aws.region(),
            target,
            Some(self.config.max_tunnel_duration()),
            SystemTime::now(),
        )
        .map_err(|e| EicError::Tunnel {
            source: cause_msg(format!("presigning the tunnel URL: {e}")),
        })?;
        tunnel::open(&url).await
    }

    /// Runs the SFTP server (`EIC_SFTP_COMMAND`, usually through `sudo`) on a new channel and
    /// starts the SFTP session on it (its `init` is answered during the first operation).
    async fn start_sftp(&self, handle: &SshHandle) -> Result<RemoteFs, EicError> {
        let command = self.config.sftp_command.clone();
        let (stream, report) = sftp_channel::start(handle, &command).await?;
        let timeout_secs = self.config.operation_timeout.as_secs().max(1);
        // A server that did not start poisons the connection (a channel error) and says why.
        let explain = move |err: EicError| {
            let report = report.lock().unwrap_or_else(|e| e.into_inner());
            EicError::SftpChannel {
                source: cause_msg(format!(
                    "the SFTP server `{command}` did not start: {} ({err}: {})",
                    report.describe(),
                    std::error::Error::source(&err)
                        .map(|s| s.to_string())
                        .unwrap_or_default(),
                )),
            }
        };
        RemoteFs::start(stream, timeout_secs, explain).await
    }

    /// Bounds one setup step by its timeout, in its own span, counted by outcome.
    fn step<'a, T: 'a>(
        &self,
        step: Step,
        work: impl Future<Output = Result<T, EicError>> + 'a,
    ) -> impl Future<Output = Result<T, EicError>> + 'a {
        let bounded = self.bounded(step, work);
        async move {
            let result = bounded.await;
            metrics::setup_step(step, result.is_ok());
            result
        }
    }

    /// Like [`Self::step`] for a first part of a step whose last part is a `step` call: only a
    /// failure is counted here (it ends the setup), so each setup counts each step once.
    fn step_part<'a, T: 'a>(
        &self,
        step: Step,
        work: impl Future<Output = Result<T, EicError>> + 'a,
    ) -> impl Future<Output = Result<T, EicError>> + 'a {
        let bounded = self.bounded(step, work);
        async move {
            let result = bounded.await;
            if result.is_err() {
                metrics::setup_step(step, false);
            }
            result
        }
    }

    /// `work` boxed (the SDK's and russh's futures are large), in its span, within the step
    /// timeout.
    fn bounded<'a, T: 'a>(
        &self,
        step: Step,
        work: impl Future<Output = Result<T, EicError>> + 'a,
    ) -> impl Future<Output = Result<T, EicError>> + 'a {
        let span = tracing::info_span!("eic.step", step = step.as_str());
        let work = Box::pin(work.instrument(span));
        let limit = self.config.step_timeout;
        async move {
            match tokio::time::timeout(limit, work).await {
                Ok(result) => result,
                Err(_) => Err(EicError::Timeout { step }),
            }
        }
    }
}

impl Connector for EicConnector {
    type Conn = EicConnection;
    type Error = EicError;

    async fn connect(&self, instance: &InstanceId) -> Result<EicConnection, EicError> {
        let started = Instant::now();
        let result = Box::pin(self.build(instance)).await;
        match &result {
            Ok(_) => {
                metrics::setup_duration(started.elapsed());
                tracing::info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "EIC connection ready"
                );
            }
            Err(err) => {
                // The cached address or endpoint may be what broke: look it up again next time.
                self.lock_targets().remove(instance);
                tracing::warn!(error = %err, cause = ?std::error::Error::source(err), "EIC setup failed");
            }
        }
        result
    }

    fn is_broken(&self, conn: &EicConnection) -> bool {
        conn.ssh.is_closed()
    }

    async fn disconnect(&self, conn: &EicConnection) {
        let _ = conn
            .ssh
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}
