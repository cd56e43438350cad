//! The presigned `openTunnel` URL, exactly as `aws ec2-instance-connect open-tunnel` builds it
//! (aws-cli v2's `open-tunnel`): SigV4 query parameters, service `ec2-instance-connect`, 60 s expiry, only
//! `host` signed, payload hash of the empty string.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings};
use aws_sigv4::sign::v4;
use thiserror::Error;

/// Where a tunnel goes.
#[derive(Debug, Clone, Copy)]
pub struct TunnelTarget<'a> {
    /// The endpoint's DNS name; `host:port` for a simulator.
    pub endpoint_dns: &'a str,
    pub endpoint_id: &'a str,
    pub private_ip: &'a str,
    pub remote_port: u16,
    /// Seconds, 1..=3600; the endpoint's default when absent.
    pub max_tunnel_duration: Option<u32>,
}

/// AWS credentials used to sign.
#[derive(Debug, Error)]
pub enum PresignError {
    #[error("cannot sign the openTunnel URL")]
    Sign(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The signed `ws[s]://{dns}/openTunnel?…` URL. `ws` only for a loopback endpoint host.
pub fn presign_open_tunnel_url(
    target: &TunnelTarget<'_>,
    credentials: &Credentials,
    region: &str,
    now: SystemTime,
) -> Result<String, PresignError> {
    let scheme = if is_loopback_authority(target.endpoint_dns) {
        "ws"
    } else {
        "wss"
    };
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("instanceConnectEndpointId", target.endpoint_id)
        .append_pair("remotePort", &target.remote_port.to_string())
        .append_pair("privateIpAddress", target.private_ip);
    if let Some(seconds) = target.max_tunnel_duration {
        query.append_pair("maxTunnelDuration", &seconds.to_string());
    }
    let url = format!(
        "{scheme}://{}/openTunnel?{}",
        target.endpoint_dns,
        query.finish()
    );

    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(60));
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("ec2-instance-connect")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| PresignError::Sign(e.into()))?
        .into();
    let request = SignableRequest::new(
        "GET",
        url.as_str(),
        std::iter::empty(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| PresignError::Sign(e.into()))?;
    let (instructions, _signature) = aws_sigv4::http_request::sign(request, &params)
        .map_err(|e| PresignError::Sign(e.into()))?
        .into_parts();

    let mut signed = url;
    let mut extra = form_urlencoded::Serializer::new(String::new());
    for (name, value) in instructions.params() {
        extra.append_pair(name, value);
    }
    signed.push('&');
    signed.push_str(&extra.finish());
    Ok(signed)
}

/// Whether `host[:port]` names a loopback host (127.0.0.0/8, ::1, localhost).
pub(crate) fn is_loopback_authority(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(h, _)| h)
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The golden vector of aws-cli's `test_opentunnel.py`.
    #[test]
    fn matches_the_aws_cli_golden_vector() {
        let credentials = Credentials::new("access_key", "secret_key", None, None, "test");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_840_461); // 2020-01-01T01:01:01Z
        let target = TunnelTarget {
            endpoint_dns: "eice-123.ec2-instance-connect-endpoint.us-west-2.amazonaws.com",
            endpoint_id: "eice-123",
            private_ip: "10.0.0.0",
            remote_port: 22,
            max_tunnel_duration: Some(1),
        };
        let url = presign_open_tunnel_url(&target, &credentials, "us-west-2", now).unwrap();
        assert!(url.starts_with("wss://eice-123.ec2-instance-connect-endpoint.us-west-2.amazonaws.com/openTunnel?instanceConnectEndpointId=eice-123&remotePort=22&privateIpAddress=10.0.0.0&maxTunnelDuration=1&X-Amz-Algorithm=AWS4-HMAC-SHA256"), "{url}");
        assert!(
            url.ends_with(
                "&X-Amz-Signature=3a56740422a5b9aebd22d860b7a30c729e459a6f71a83bc0de3a2b44b7353f28"
            ),
            "{url}"
        );
        assert!(url.contains("X-Amz-Credential=access_key%2F20200101%2Fus-west-2%2Fec2-instance-connect%2Faws4_request"), "{url}");
    }

    #[test]
    fn plain_ws_only_for_loopback_hosts() {
        for host in ["127.0.0.1:8080", "127.9.9.9", "localhost:1", "[::1]:5"] {
            assert!(is_loopback_authority(host), "{host}");
        }
        for host in [
            "10.0.0.1:80",
            "eice-1.example.com",
            "localhost.evil.com:1",
            "[::2]:5",
        ] {
            assert!(!is_loopback_authority(host), "{host}");
        }
    }
}
