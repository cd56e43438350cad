//! The russh client over the tunnel: host key pinned on first use, public key authentication.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::EicError;
use crate::error::{cause, cause_msg};
use crate::pool::InstanceId;

/// SSH keepalive: the tunnel has no pings of its own (the Go original used 15 s too).
const KEEPALIVE: Duration = Duration::from_secs(15);
/// How long after the first channel open its nudge follows: long enough to travel in a packet of
/// its own, short against any round trip.
const NUDGE_AFTER: Duration = Duration::from_millis(1);

pub(crate) type SshHandle = client::Handle<HostKeyCheck>;

/// Host keys seen per instance, for the life of the process.
#[derive(Default)]
pub(crate) struct KnownHosts(Mutex<HashMap<InstanceId, PublicKey>>);

impl KnownHosts {
    /// Trust on first use: records the key the first time, then accepts only that key.
    fn check(&self, instance: &InstanceId, key: &PublicKey) -> bool {
        let mut known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let pinned = known.entry(instance.clone()).or_insert_with(|| key.clone());
        pinned.key_data() == key.key_data()
    }
}

/// russh handler that checks the server's host key against [`KnownHosts`].
pub(crate) struct HostKeyCheck {
    instance: InstanceId,
    known: Arc<KnownHosts>,
    /// Set when the key differs from the pinned one, to name the cause precisely.
    refused: Arc<std::sync::atomic::AtomicBool>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => PublicKey::from(cert.public_key().clone()),
        };
        let accepted = self.known.check(&self.instance, &key);
        if !accepted {
            self.refused
                .store(true, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(instance.id = %self.instance, "SSH host key changed since first use; refusing");
        }
        Ok(accepted)
    }

    /// OpenSSH announces its host keys right after authentication, in a small packet sent just
    /// before it confirms our channel; with Nagle's algorithm on its socket (sshd sets
    /// `TCP_NODELAY` only for interactive sessions) the confirmation waits until that packet is
    /// acknowledged, and the peer's delayed ACK takes 40 ms. Any packet back carries the ACK at
    /// once: a keepalive without a reply, which sshd ignores. [`open_first_channel`]'s nudge
    /// usually acknowledges it sooner; this one covers a tunnel that merged the nudge into the
    /// open's packet.
    async fn openssh_ext_host_keys_announced(
        &mut self,
        _keys: Vec<PublicKey>,
        session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        session.send_keepalive(false)
    }
}

fn config() -> Arc<client::Config> {
    Arc::new(client::Config {
        keepalive_interval: Some(KEEPALIVE),
        keepalive_max: 3,
        ..Default::default()
    })
}

/// Opens the first channel after login, one round trip sooner than a plain open.
///
/// sshd announces its host keys right after the login's answer, but Nagle's algorithm holds the
/// announcement until that answer is acknowledged, which only our channel open does (the
/// tunnel's end delays its ACKs). The confirmation then waits behind the announcement, for an
/// acknowledgement that would come a round trip later (the keepalive of
/// [`HostKeyCheck::openssh_ext_host_keys_announced`]). A keepalive sent just after the open, in
/// its own packet, reaches sshd once the announcement has left and acknowledges it: the
/// confirmation follows at once.
pub(crate) async fn open_first_channel(
    handle: &SshHandle,
) -> Result<russh::Channel<client::Msg>, russh::Error> {
    let nudge = async {
        tokio::time::sleep(NUDGE_AFTER).await;
        // Only a hint: a failed send fails the open itself.
        let _ = handle.send_keepalive(false).await;
    };
    let (channel, ()) = tokio::join!(handle.channel_open_session(), nudge);
    channel
}

/// SSH version exchange, key exchange and host key check over `stream`.
pub(crate) async fn handshake<S>(
    stream: S,
    instance: &InstanceId,
    known: &Arc<KnownHosts>,
) -> Result<SshHandle, EicError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let refused = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handler = HostKeyCheck {
        instance: instance.clone(),
        known: known.clone(),
        refused: refused.clone(),
    };
    client::connect_stream(config(), stream, handler)
        .await
        .map_err(|err| {
            let source = if refused.load(std::sync::atomic::Ordering::Relaxed) {
                cause_msg(format!(
                    "host key of {instance} changed since first use; refusing to connect"
                ))
            } else {
                cause(err)
            };
            EicError::Ssh { source }
        })
}

/// Logs in as `user` with the key pushed through EC2 Instance Connect.
pub(crate) async fn authenticate(
    handle: &mut SshHandle,
    user: &str,
    key: PrivateKey,
) -> Result<(), EicError> {
    let result = handle
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), None))
        .await
        .map_err(|err| EicError::Ssh { source: cause(err) })?;
    if result.success() {
        Ok(())
    } else {
        Err(EicError::Ssh {
            source: cause_msg(format!(
                "public key authentication as {user} refused (was the pushed key accepted?)"
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::Algorithm;

    #[test]
    fn a_host_key_is_pinned_on_first_use_and_a_change_is_refused() {
        let known = KnownHosts::default();
        let random = || {
            PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
                .unwrap()
                .public_key()
                .clone()
        };
        let (first, second) = (random(), random());
        let a = InstanceId::new("i-a");
        assert!(known.check(&a, &first));
        assert!(known.check(&a, &first));
        assert!(!known.check(&a, &second));
        assert!(known.check(&InstanceId::new("i-b"), &second));
    }
}
