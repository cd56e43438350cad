//! What the EIC benchmarks share: the pool's settings for a simulator, the key push, medians.

use std::time::Duration;

use eic_pool::{AwsSettings, EicConfig};
use eic_sim::SimInfo;
use russh::keys::{Algorithm, PrivateKey};

pub const INSTANCE: &str = "i-0123456789abcdef0";

/// Default pool settings, pointed at the simulator of `info` without any process environment.
pub fn config(info: &SimInfo) -> EicConfig {
    EicConfig {
        os_user: info.os_user.clone(),
        aws: Some(AwsSettings {
            endpoint_url: Some(info.aws_endpoint_url.clone()),
            region: info.region.clone(),
            access_key_id: info.access_key_id.clone(),
            secret_access_key: info.secret_access_key.clone().into(),
        }),
        ..EicConfig::default()
    }
}

pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub async fn push_key(info: &SimInfo) -> PrivateKey {
    use aws_sdk_ec2instanceconnect as eic;
    let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
    let credentials = aws_credential_types::Credentials::new(
        &info.access_key_id,
        &info.secret_access_key,
        None,
        None,
        "bench",
    );
    let config = eic::Config::builder()
        .behavior_version(eic::config::BehaviorVersion::latest())
        .region(eic::config::Region::new(info.region.clone()))
        .credentials_provider(credentials)
        .endpoint_url(&info.aws_endpoint_url)
        .build();
    eic::Client::from_conf(config)
        .send_ssh_public_key()
        .instance_id(INSTANCE)
        .instance_os_user(&info.os_user)
        .ssh_public_key(key.public_key().to_openssh().unwrap())
        .send()
        .await
        .unwrap();
    key
}

pub struct AcceptAny;

impl russh::client::Handler for AcceptAny {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// A bare SFTP session through a fresh tunnel, without the pool: the reference the pool is
/// measured against. The tunnel and the SSH connection live as long as it.
pub struct BareSftp {
    pub sftp: russh_sftp::client::SftpSession,
    _ssh: russh::client::Handle<AcceptAny>,
    _tunnel: eic_sim::TunnelListener,
}

pub async fn bare_sftp(info: &SimInfo) -> BareSftp {
    use russh::keys::PrivateKeyWithHashAlg;
    use std::sync::Arc;
    let key = push_key(info).await;
    let listener = eic_sim::TunnelListener::bind(info, INSTANCE).await.unwrap();
    let tcp = tokio::net::TcpStream::connect(listener.local_addr())
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    let config = Arc::new(russh::client::Config::default());
    let mut ssh = russh::client::connect_stream(config, tcp, AcceptAny)
        .await
        .unwrap();
    let auth = ssh
        .authenticate_publickey(
            &info.os_user,
            PrivateKeyWithHashAlg::new(Arc::new(key), None),
        )
        .await
        .unwrap();
    assert!(auth.success());
    let channel = ssh.channel_open_session().await.unwrap();
    channel.exec(true, "sftp-server").await.unwrap();
    let sftp = russh_sftp::client::SftpSession::new(channel.into_stream())
        .await
        .unwrap();
    BareSftp {
        sftp,
        _ssh: ssh,
        _tunnel: listener,
    }
}

/// The median of `count` SFTP `stat`s of `path`: one round trip through the tunnel, sshd and the
/// SFTP server, as measured in the same run as what is compared with it.
pub async fn sftp_round_trip(
    sftp: &russh_sftp::client::SftpSession,
    path: &str,
    count: usize,
) -> Duration {
    let mut samples = Vec::new();
    for _ in 0..count {
        let started = std::time::Instant::now();
        sftp.metadata(path).await.unwrap();
        samples.push(started.elapsed());
    }
    median(samples)
}
