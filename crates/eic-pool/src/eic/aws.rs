//! The AWS side: credentials, the key push (`aws-sdk-ec2instanceconnect`), and the two EC2 Query
//! API calls of discovery, signed with `aws-sigv4` (we do not build the huge `aws-sdk-ec2`).

use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_ec2instanceconnect::operation::send_ssh_public_key::SendSSHPublicKeyError;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use secrecy::ExposeSecret;

use super::xml;
use crate::error::{cause, cause_msg};
use crate::{AwsSettings, EicConfig, EicError};

const EC2_API_VERSION: &str = "2016-11-15";
/// Endpoint states the aws-cli accepts for tunnels.
/// Pages of the endpoint listing read at most (an account holds a few endpoints per VPC; the
/// bound keeps a misbehaving `NextToken` from looping).
const MAX_ENDPOINT_PAGES: usize = 20;

const USABLE_ENDPOINT_STATES: [&str; 4] = [
    "create-complete",
    "update-in-progress",
    "update-failed",
    "update-complete",
];

/// Where a tunnel to one instance goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub private_ip: String,
    pub endpoint_id: String,
    /// Host (and, for the simulator only, `:port`) of the EIC Endpoint.
    pub endpoint_dns: String,
}

/// AWS clients, built once from the SDK's standard environment.
pub(crate) struct Aws {
    sdk: aws_config::SdkConfig,
    instance_connect: aws_sdk_ec2instanceconnect::Client,
    http: reqwest::Client,
    ec2_endpoint: String,
    region: String,
}

impl Aws {
    /// Explicit settings when the configuration has them ([`EicConfig::aws`]); otherwise region,
    /// credentials and endpoints the way every AWS SDK loads them (`AWS_REGION`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`, profiles, instance role ...). Makes no call.
    pub async fn new(config: &EicConfig) -> Result<Self, EicError> {
        let (sdk, ec2_endpoint, region) = match &config.aws {
            Some(settings) => explicit_sdk_config(settings).await,
            None => environment_sdk_config(config).await,
        };
        let http = reqwest::Client::builder()
            .timeout(config.step_timeout)
            .build()
            .map_err(|e| EicError::InvalidConfig(format!("HTTP client: {e}")))?;
        Ok(Self {
            instance_connect: aws_sdk_ec2instanceconnect::Client::new(&sdk),
            sdk,
            http,
            ec2_endpoint: ec2_endpoint.trim_end_matches('/').to_owned(),
            region,
        })
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// Current credentials (refreshed by the provider when they are temporary).
    pub async fn credentials(
        &self,
    ) -> Result<Credentials, aws_credential_types::provider::error::CredentialsError> {
        match self.sdk.credentials_provider() {
            Some(provider) => provider.provide_credentials().await,
            None => Err(
                aws_credential_types::provider::error::CredentialsError::not_loaded(
                    "no AWS credentials provider is configured",
                ),
            ),
        }
    }

    /// `SendSSHPublicKey`: the key is accepted for logins during the next 60 s.
    pub async fn push_key(
        &self,
        instance_id: &str,
        os_user: &str,
        public_key: &str,
    ) -> Result<(), EicError> {
        let sent = self
            .instance_connect
            .send_ssh_public_key()
            .instance_id(instance_id)
            .instance_os_user(os_user)
            .ssh_public_key(public_key)
            .send()
            .await;
        match sent {
            Ok(reply) if reply.success() => Ok(()),
            Ok(_) => Err(EicError::KeyPush {
                source: cause_msg("SendSSHPublicKey answered Success=false"),
            }),
            Err(err) => match err.into_service_error() {
                SendSSHPublicKeyError::Ec2InstanceNotFoundException(_) => {
                    Err(unavailable(instance_id, "instance not found"))
                }
                SendSSHPublicKeyError::Ec2InstanceStateInvalidException(_) => {
                    Err(unavailable(instance_id, "instance is not running"))
                }
                SendSSHPublicKeyError::Ec2InstanceUnavailableException(_) => {
                    Err(unavailable(instance_id, "instance is unavailable"))
                }
                other => Err(EicError::KeyPush {
                    source: cause(other),
                }),
            },
        }
    }

    /// Finds the instance's private address and the EIC Endpoint of its VPC (same subnet
    /// preferred), like `aws ec2-instance-connect open-tunnel` does, but with the two `Describe`
    /// calls at once: the endpoints are listed without the VPC filter (which would need the
    /// instance's answer first) and matched to the instance's VPC here, so discovery costs one
    /// EC2 round trip, not two. The caller caches the result per instance.
    // Over 60 lines: the two lookups and their shortcuts read as one sequence.
    pub async fn discover(
        &self,
        instance_id: &str,
        config: &EicConfig,
    ) -> Result<Target, EicError> {
        let configured_endpoint = config
            .endpoint_id
            .as_ref()
            .zip(config.endpoint_dns.as_ref());
        if let (Some((endpoint_id, endpoint_dns)), Some(private_ip)) =
            (configured_endpoint, config.instance_ips.get(instance_id))
        {
            // Everything is configured: no EC2 call at all.
            return Ok(Target {
                private_ip: private_ip.clone(),
                endpoint_id: endpoint_id.clone(),
                endpoint_dns: endpoint_dns.clone(),
            });
        }
        if let Some((endpoint_id, endpoint_dns)) = configured_endpoint {
            // The endpoint is configured: only the instance's address is looked up.
            let instance = self.describe_instance(instance_id).await?;
            return Ok(Target {
                private_ip: instance.private_ip,
                endpoint_id: endpoint_id.clone(),
                endpoint_dns: endpoint_dns.clone(),
            });
        }
        let (instance, endpoints) = tokio::try_join!(
            self.describe_instance(instance_id),
            self.describe_endpoints()
        )?;
        let usable = endpoints.iter().filter(|e| {
            e[4] == instance.vpc_id
                && config.endpoint_id.as_ref().is_none_or(|id| e[0] == *id)
                && (e[3].is_empty() || USABLE_ENDPOINT_STATES.contains(&e[3].as_str()))
                && !e[1].is_empty()
        });
        let chosen = usable
            .clone()
            .find(|e| e[2] == instance.subnet_id)
            .or_else(|| usable.clone().next())
            .ok_or_else(|| {
                unavailable(
                    instance_id,
                    &format!("no EC2 Instance Connect Endpoint in {}", instance.vpc_id),
                )
            })?;
        Ok(Target {
            private_ip: instance.private_ip,
            endpoint_id: chosen[0].clone(),
            endpoint_dns: config
                .endpoint_dns
                .clone()
                .unwrap_or_else(|| chosen[1].clone()),
        })
    }

    /// The usable EIC Endpoints of the account and region, each as `[id, dns, subnet, state,
    /// vpc]`: every page of the listing (`NextToken`), at most [`MAX_ENDPOINT_PAGES`] of them.
    async fn describe_endpoints(&self) -> Result<Vec<Vec<String>>, EicError> {
        let reply_error =
            |e: quick_xml::Error| discovery(format!("DescribeInstanceConnectEndpoints reply: {e}"));
        let mut endpoints = Vec::new();
        let mut next_token = String::new();
        for _ in 0..MAX_ENDPOINT_PAGES {
            let mut params = vec![
                ("Filter.1.Name", "state"),
                ("Filter.1.Value.1", USABLE_ENDPOINT_STATES[0]),
                ("Filter.1.Value.2", USABLE_ENDPOINT_STATES[1]),
                ("Filter.1.Value.3", USABLE_ENDPOINT_STATES[2]),
                ("Filter.1.Value.4", USABLE_ENDPOINT_STATES[3]),
            ];
            if !next_token.is_empty() {
                params.push(("NextToken", next_token.as_str()));
            }
            let page = self
                .query("DescribeInstanceConnectEndpoints", &params)
                .await?;
            endpoints.extend(
                xml::records(
                    &page,
                    "DescribeInstanceConnectEndpointsResponse/instanceConnectEndpointSet/item",
                    &[
                        "instanceConnectEndpointId",
                        "dnsName",
                        "subnetId",
                        "state",
                        "vpcId",
                    ],
                )
                .map_err(reply_error)?,
            );
            next_token = xml::records(
                &page,
                "DescribeInstanceConnectEndpointsResponse",
                &["nextToken"],
            )
            .map_err(reply_error)?
            .into_iter()
            .next()
            .and_then(|mut fields| fields.pop())
            .unwrap_or_default();
            if next_token.is_empty() {
                break;
            }
        }
        Ok(endpoints)
    }

    async fn describe_instance(&self, instance_id: &str) -> Result<Instance, EicError> {
        let body = self
            .query("DescribeInstances", &[("InstanceId.1", instance_id)])
            .await
            .map_err(|err| match err {
                Ec2Error::Api { code, .. } if code.starts_with("InvalidInstanceID") => {
                    unavailable(instance_id, "instance not found")
                }
                other => discovery(other.to_string()),
            })?;
        let prefix = "DescribeInstancesResponse/reservationSet/item/instancesSet/item";
        let found = xml::records(
            &body,
            prefix,
            &[
                "instanceId",
                "privateIpAddress",
                "vpcId",
                "subnetId",
                "instanceState/name",
                "ipv6Address",
            ],
        )
        .map_err(|e| discovery(format!("DescribeInstances reply: {e}")))?;
        let Some(fields) = found.into_iter().find(|f| f[0] == instance_id) else {
            return Err(unavailable(instance_id, "instance not found"));
        };
        let [_, private_ip, vpc_id, subnet_id, state, ipv6] = <[String; 6]>::try_from(fields)
            .map_err(|_| discovery("DescribeInstances reply: field count".into()))?;
        if !state.is_empty() && state != "running" {
            return Err(unavailable(instance_id, &format!("instance is {state}")));
        }
        let private_ip = if private_ip.is_empty() {
            ipv6
        } else {
            private_ip
        };
        if private_ip.is_empty() || vpc_id.is_empty() {
            return Err(unavailable(
                instance_id,
                "instance has no private address in a VPC",
            ));
        }
        Ok(Instance {
            private_ip,
            vpc_id,
            subnet_id,
        })
    }

    /// One EC2 Query API call: form-encoded POST, SigV4 header-signed for service `ec2`.
    async fn query(&self, action: &str, params: &[(&str, &str)]) -> Result<String, Ec2Error> {
        let body = form_urlencoded(
            [("Action", action), ("Version", EC2_API_VERSION)]
                .iter()
                .chain(params),
        );
        let request = self.signed_post(&body).await?;
        let reply = self
            .http
            .execute(request)
            .await
            .map_err(|e| Ec2Error::Transport(e.without_url().to_string()))?;
        let status = reply.status();
        let text = reply
            .text()
            .await
            .map_err(|e| Ec2Error::Transport(e.without_url().to_string()))?;
        if status.is_success() {
            return Ok(text);
        }
        let (code, message) = xml::records(&text, "Response/Errors/Error", &["Code", "Message"])
            .ok()
            .and_then(|errors| errors.into_iter().next())
            .map(|mut e| (std::mem::take(&mut e[0]), std::mem::take(&mut e[1])))
            .unwrap_or_default();
        Err(Ec2Error::Api {
            action: action.to_owned(),
            status: status.as_u16(),
            code,
            message,
        })
    }

    async fn signed_post(&self, body: &str) -> Result<reqwest::Request, Ec2Error> {
        let credentials = self
            .credentials()
            .await
            .map_err(|e| Ec2Error::Signing(format!("credentials: {e}")))?;
        let url = format!("{}/", self.ec2_endpoint);
        let uri: http::Uri = url
            .parse()
            .map_err(|e| Ec2Error::Signing(format!("endpoint URL {url}: {e}")))?;
        let host = uri
            .authority()
            .ok_or_else(|| Ec2Error::Signing(format!("endpoint URL {url} has no host")))?
            .to_string();
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let mut request = http::Request::post(&url)
            .header(http::header::HOST, &host)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body.to_owned())
            .map_err(|e| Ec2Error::Signing(e.to_string()))?;
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("ec2")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| Ec2Error::Signing(e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            [("host", host.as_str()), ("content-type", content_type)].into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| Ec2Error::Signing(e.to_string()))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| Ec2Error::Signing(e.to_string()))?
            .into_parts();
        instructions.apply_to_request_http1x(&mut request);
        reqwest::Request::try_from(request).map_err(|e| Ec2Error::Signing(e.to_string()))
    }
}

/// The SDK configuration, EC2 endpoint and region from explicit settings: nothing is read from
/// the environment that could contradict them.
async fn explicit_sdk_config(settings: &AwsSettings) -> (aws_config::SdkConfig, String, String) {
    let credentials = Credentials::new(
        &settings.access_key_id,
        settings.secret_access_key.expose_secret(),
        None,
        None,
        "eic-pool settings",
    );
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(settings.region.clone()))
        .credentials_provider(credentials);
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let ec2_endpoint = settings
        .endpoint_url
        .clone()
        .unwrap_or_else(|| default_ec2_endpoint(&settings.region));
    (loader.load().await, ec2_endpoint, settings.region.clone())
}

/// The SDK configuration, EC2 endpoint and region from the standard environment.
async fn environment_sdk_config(config: &EicConfig) -> (aws_config::SdkConfig, String, String) {
    // The region is resolved here rather than by the SDK's chain, whose last resort asks the
    // instance metadata service and stalls off EC2.
    let region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| config.region.clone());
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(region.clone()))
        .load()
        .await;
    let ec2_endpoint = std::env::var("AWS_ENDPOINT_URL_EC2")
        .ok()
        .or_else(|| sdk.endpoint_url().map(str::to_owned))
        .unwrap_or_else(|| default_ec2_endpoint(&region));
    (sdk, ec2_endpoint, region)
}

fn default_ec2_endpoint(region: &str) -> String {
    format!("https://ec2.{region}.amazonaws.com")
}

struct Instance {
    private_ip: String,
    vpc_id: String,
    subnet_id: String,
}

/// A failed EC2 Query API call.
#[derive(Debug, thiserror::Error)]
enum Ec2Error {
    #[error("signing the EC2 request failed: {0}")]
    Signing(String),
    #[error("EC2 request failed: {0}")]
    Transport(String),
    #[error("EC2 {action} answered {status} {code}: {message}")]
    Api {
        action: String,
        status: u16,
        code: String,
        message: String,
    },
}

impl From<Ec2Error> for EicError {
    fn from(err: Ec2Error) -> Self {
        EicError::Discovery { source: cause(err) }
    }
}

fn discovery(message: String) -> EicError {
    EicError::Discovery {
        source: cause_msg(message),
    }
}

fn unavailable(instance_id: &str, reason: &str) -> EicError {
    EicError::InstanceUnavailable {
        instance_id: instance_id.to_owned(),
        reason: reason.to_owned(),
    }
}

/// `application/x-www-form-urlencoded`, in the given order.
pub(crate) fn form_urlencoded<'a>(pairs: impl Iterator<Item = &'a (&'a str, &'a str)>) -> String {
    pairs
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// RFC 3986 unreserved characters stay, everything else is `%XX` (what AWS expects).
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Presigns the `openTunnel` WebSocket URL exactly like aws-cli v2's `open-tunnel`: SigV4 query
/// parameters, service `ec2-instance-connect`, 60 s expiry, only `host` signed, payload hash of
/// the empty string. Plain `ws://` only for a loopback endpoint (the simulator).
pub(crate) fn presign_tunnel_url(
    credentials: Credentials,
    region: &str,
    target: &Target,
    max_tunnel_duration: Option<Duration>,
    now: SystemTime,
) -> Result<String, String> {
    let scheme = if is_loopback_host(&target.endpoint_dns) {
        "ws"
    } else {
        "wss"
    };
    let duration = max_tunnel_duration.map(|d| d.as_secs().to_string());
    let mut params = vec![
        ("instanceConnectEndpointId", target.endpoint_id.as_str()),
        ("remotePort", "22"),
        ("privateIpAddress", target.private_ip.as_str()),
    ];
    if let Some(duration) = &duration {
        params.push(("maxTunnelDuration", duration.as_str()));
    }
    let url = format!(
        "{scheme}://{}/openTunnel?{}",
        target.endpoint_dns,
        form_urlencoded(params.iter())
    );
    let mut settings = SigningSettings::default();
    settings.signature_location = aws_sigv4::http_request::SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(60));
    let identity = credentials.into();
    let signing_params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("ec2-instance-connect")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable = SignableRequest::new(
        "GET",
        url.as_str(),
        [("host", target.endpoint_dns.as_str())].into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _signature) = sign(signable, &signing_params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let mut request = http::Request::get(&url)
        .body(())
        .map_err(|e| e.to_string())?;
    instructions.apply_to_request_http1x(&mut request);
    Ok(request.uri().to_string())
}

/// Whether a `host[:port]` names this machine (127.0.0.0/8, ::1, localhost).
pub(crate) fn is_loopback_host(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        match authority.rsplit_once(':') {
            Some((host, port))
                if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                host
            }
            _ => authority,
        }
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// aws-cli's golden vector (`tests/functional/ec2instanceconnect/test_opentunnel.py`).
    #[test]
    fn presigned_tunnel_url_matches_the_aws_cli_golden_vector() {
        let credentials = Credentials::new("access_key", "secret_key", None, None, "test");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_840_461); // 2020-01-01T01:01:01Z
        let target = Target {
            private_ip: "10.0.0.0".into(),
            endpoint_id: "eice-123".into(),
            endpoint_dns: "eice-123.ec2-instance-connect-endpoint.us-west-2.amazonaws.com".into(),
        };
        let url = presign_tunnel_url(
            credentials,
            "us-west-2",
            &target,
            Some(Duration::from_secs(1)),
            now,
        )
        .unwrap();
        assert!(url.starts_with(
            "wss://eice-123.ec2-instance-connect-endpoint.us-west-2.amazonaws.com/openTunnel?\
             instanceConnectEndpointId=eice-123&remotePort=22&privateIpAddress=10.0.0.0&maxTunnelDuration=1&"
        ), "{url}");
        for param in [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=access_key%2F20200101%2Fus-west-2%2Fec2-instance-connect%2Faws4_request",
            "X-Amz-Date=20200101T010101Z",
            "X-Amz-Expires=60",
            "X-Amz-SignedHeaders=host",
            "X-Amz-Signature=3a56740422a5b9aebd22d860b7a30c729e459a6f71a83bc0de3a2b44b7353f28",
        ] {
            assert!(url.contains(param), "{param} missing from {url}");
        }
    }

    #[test]
    fn only_a_loopback_endpoint_gets_plain_ws() {
        for host in [
            "127.0.0.1:8080",
            "127.1.2.3",
            "localhost:99",
            "[::1]:443",
            "::1",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "eice-1.example.amazonaws.com",
            "10.0.0.1:443",
            "[2001:db8::1]:80",
            "localhost.evil.com",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn form_encoding_escapes_reserved_characters() {
        let pairs = [("a b", "x/y=z&"), ("Version", "2016-11-15")];
        assert_eq!(
            form_urlencoded(pairs.iter()),
            "a%20b=x%2Fy%3Dz%26&Version=2016-11-15"
        );
    }
}
