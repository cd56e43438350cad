//! Shared by the test files that point the pool at `eic-sim` through explicit settings.

use std::time::Duration;

use eic_pool::{AwsSettings, EicConfig};
use eic_sim::{SimInfo, SimProcess};

pub const INSTANCE: &str = "i-0123456789abcdef0";

/// A simulator of [`INSTANCE`] with profile `none` (needs root and openssh-server).
pub fn sim() -> SimProcess {
    SimProcess::spawn(&["--instance", INSTANCE])
        .expect("eic-sim starts (cargo build --workspace --all-targets; root; openssh-server)")
}

/// Pool settings pointing at the simulator of `info`, without any process environment.
pub fn config(info: &SimInfo) -> EicConfig {
    EicConfig {
        os_user: info.os_user.clone(),
        step_timeout: Duration::from_secs(5),
        operation_timeout: Duration::from_secs(20),
        aws: Some(AwsSettings {
            endpoint_url: Some(info.aws_endpoint_url.clone()),
            region: info.region.clone(),
            access_key_id: info.access_key_id.clone(),
            secret_access_key: info.secret_access_key.clone().into(),
        }),
        ..EicConfig::default()
    }
}
