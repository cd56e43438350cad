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
