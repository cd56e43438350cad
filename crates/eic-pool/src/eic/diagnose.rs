//! The terminal's diagnosis: the setup steps run one after the other on a connection of their
//! own (not pooled, closed at the end), each timed, stopping at the first failure, as the
//! original's `handlers/terminal_diagnose.go` at 624ef4d0 reports its CLI steps.

use std::future::Future;
use std::time::Duration;

use russh::keys::{Algorithm, PrivateKey};
use tokio::time::Instant;

use super::{EicConnector, open_shell_channel, ssh};
use crate::error::cause;
use crate::pool::InstanceId;
use crate::{EicError, ShellSize, Step};

/// One step of a diagnosis.
#[derive(Debug, Clone)]
pub struct DiagnoseStep {
    pub step: Step,
    pub duration: Duration,
    pub error: Option<EicError>,
}

impl EicConnector {
    /// Discovery, key push, tunnel, SSH (key exchange and login) and a shell, in order; the
    /// steps that passed plus the first failing one.
    pub(crate) async fn diagnose(&self, instance: &InstanceId) -> Vec<DiagnoseStep> {
        let mut steps = Vec::new();
        let _ = self.diagnose_steps(instance, &mut steps).await;
        steps
    }

    async fn diagnose_steps(
        &self,
        instance: &InstanceId,
        steps: &mut Vec<DiagnoseStep>,
    ) -> Result<(), ()> {
        let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
            .map_err(|e| record_failure(steps, Step::Ssh, EicError::Ssh { source: cause(e) }))?;
        let public_key = key
            .public_key()
            .to_openssh()
            .map_err(|e| record_failure(steps, Step::Ssh, EicError::Ssh { source: cause(e) }))?;
        let target = timed(
            steps,
            Step::Discovery,
            self.bounded(Step::Discovery, self.target(instance)),
        )
        .await?;
        let push = self
            .aws
            .push_key(instance.as_str(), &self.config.os_user, &public_key);
        timed(steps, Step::KeyPush, self.bounded(Step::KeyPush, push)).await?;
        let stream = timed(
            steps,
            Step::Tunnel,
            self.bounded(Step::Tunnel, self.open_tunnel(&target)),
        )
        .await?;
        let login = async {
            let mut handle = ssh::handshake(stream, instance, &self.known_hosts).await?;
            ssh::authenticate(&mut handle, &self.config.os_user, key).await?;
            Ok(handle)
        };
        let handle = timed(steps, Step::Ssh, self.bounded(Step::Ssh, login)).await?;
        let shell = async {
            let channel = open_shell_channel(&handle, ShellSize::default()).await?;
            let _ = channel.close().await;
            Ok(())
        };
        let result = timed(steps, Step::Shell, self.bounded(Step::Shell, shell)).await;
        let _ = handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        result
    }
}

fn record_failure(steps: &mut Vec<DiagnoseStep>, step: Step, error: EicError) {
    steps.push(DiagnoseStep {
        step,
        duration: Duration::ZERO,
        error: Some(error),
    });
}

/// Runs one step and records its duration and outcome.
async fn timed<T>(
    steps: &mut Vec<DiagnoseStep>,
    step: Step,
    work: impl Future<Output = Result<T, EicError>>,
) -> Result<T, ()> {
    let started = Instant::now();
    let result = work.await;
    let duration = started.elapsed();
    match result {
        Ok(value) => {
            steps.push(DiagnoseStep {
                step,
                duration,
                error: None,
            });
            Ok(value)
        }
        Err(error) => {
            steps.push(DiagnoseStep {
                step,
                duration,
                error: Some(error),
            });
            Err(())
        }
    }
}
