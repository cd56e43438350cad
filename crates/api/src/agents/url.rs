//! Which URLs an agent may register (the original's `validateAgentURL`, its SSRF guard).
//!
//! Only http(s); IP literals in loopback, link-local (cloud metadata), documentation, CGNAT and
//! multicast ranges are refused everywhere, private ranges too unless the server runs as a SaaS
//! tenant (workspaces there register by their VPC-private address). `localhost` is allowed by name
//! for local development; other names are resolved and every address is checked.

use std::net::IpAddr;
use std::time::Duration;

/// Resolving a hostname gives up after this long.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

struct Blocked {
    network: IpAddr,
    prefix: u8,
    label: &'static str,
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8, label: &'static str) -> Blocked {
    Blocked {
        network: IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)),
        prefix,
        label,
    }
}

const fn v6(segments: [u16; 8], prefix: u8, label: &'static str) -> Blocked {
    let [a, b, c, d, e, f, g, h] = segments;
    Blocked {
        network: IpAddr::V6(std::net::Ipv6Addr::new(a, b, c, d, e, f, g, h)),
        prefix,
        label,
    }
}

const ALWAYS_BLOCKED: &[Blocked] = &[
    v4(
        169,
        254,
        0,
        0,
        16,
        "link-local address (cloud metadata endpoint)",
    ),
    v4(127, 0, 0, 0, 8, "loopback address"),
    v6(
        [0xfe80, 0, 0, 0, 0, 0, 0, 0],
        10,
        "IPv6 link-local address (cloud metadata analogue)",
    ),
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, "IPv6 loopback address"),
    v4(
        192,
        0,
        2,
        0,
        24,
        "TEST-NET-1 documentation range (RFC-5737)",
    ),
    v4(
        198,
        51,
        100,
        0,
        24,
        "TEST-NET-2 documentation range (RFC-5737)",
    ),
    v4(
        203,
        0,
        113,
        0,
        24,
        "TEST-NET-3 documentation range (RFC-5737)",
    ),
    v4(100, 64, 0, 0, 10, "carrier-grade NAT address (RFC-6598)"),
    v4(224, 0, 0, 0, 4, "IPv4 multicast address"),
    v6(
        [0xfc00, 0, 0, 0, 0, 0, 0, 0],
        8,
        "IPv6 ULA non-routable prefix (fc00::/8)",
    ),
    v6(
        [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
        32,
        "IPv6 documentation address (RFC-3849 reserved)",
    ),
];

const PRIVATE: &[Blocked] = &[
    v4(10, 0, 0, 0, 8, "RFC-1918 private address"),
    v4(172, 16, 0, 0, 12, "RFC-1918 private address"),
    v4(192, 168, 0, 0, 16, "RFC-1918 private address"),
    v6(
        [0xfd00, 0, 0, 0, 0, 0, 0, 0],
        8,
        "IPv6 ULA address (RFC-4193 private)",
    ),
];

fn contains(block: &Blocked, ip: IpAddr) -> bool {
    match (block.network, ip) {
        (IpAddr::V4(net), IpAddr::V4(ip)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(block.prefix))
                .unwrap_or(0);
            u32::from(net) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(ip)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(block.prefix))
                .unwrap_or(0);
            u128::from(net) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

/// Why `ip` may not be an agent's address, if it may not.
fn blocked_reason(ip: IpAddr, allow_private: bool) -> Option<&'static str> {
    // IPv4-mapped IPv6 (::ffff:169.254.169.254) is checked as the IPv4 address it is.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let private = if allow_private { &[][..] } else { PRIVATE };
    ALWAYS_BLOCKED
        .iter()
        .chain(private)
        .find(|b| contains(b, ip))
        .map(|b| b.label)
}

/// Checks an agent's URL; the error is the message for a 400.
pub async fn validate(raw: &str, allow_private: bool) -> Result<(), String> {
    if raw.is_empty() {
        return Err("url is required".to_string());
    }
    let parsed = reqwest::Url::parse(raw).map_err(|error| format!("url is not valid: {error}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "url scheme must be http or https, got {:?}",
            parsed.scheme()
        ));
    }
    let blocked = |ip| {
        blocked_reason(ip, allow_private)
            .map(|label| format!("url targets a blocked address: {label}"))
    };
    let Some(host) = parsed.host_str() else {
        return Err("url is not valid: missing host".to_string());
    };
    // The URL parser has normalised IP literals (`0x7f.1` is `127.0.0.1`); IPv6 keeps brackets.
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return blocked(ip).map_or(Ok(()), Err);
    }
    if host == "localhost" {
        return Ok(());
    }
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addresses = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| format!("hostname {host:?} cannot be resolved (DNS error): timed out"))?
        .map_err(|error| format!("hostname {host:?} cannot be resolved (DNS error): {error}"))?;
    for address in addresses {
        if let Some(reason) = blocked(address.ip()) {
            return Err(format!(
                "hostname {host:?} resolves to forbidden address: {reason}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn allows_localhost_and_public_literals() {
        assert_eq!(validate("http://localhost:8001", false).await, Ok(()));
        assert_eq!(validate("https://8.8.8.8/a2a", false).await, Ok(()));
    }

    #[tokio::test]
    async fn refuses_bad_schemes_and_blocked_literals() {
        assert_eq!(validate("", false).await.unwrap_err(), "url is required");
        assert!(
            validate("ftp://example.com", false)
                .await
                .unwrap_err()
                .starts_with("url scheme must be http or https")
        );
        for url in [
            "http://169.254.169.254/latest",
            "http://127.0.0.1:8000",
            "http://[::1]:80",
            "http://[::ffff:169.254.169.254]/",
            "http://10.1.2.3",
            "http://192.168.1.1",
            "http://172.20.0.1",
            "http://0x7f.1/",
            "http://100.64.0.1",
        ] {
            let error = validate(url, false).await.unwrap_err();
            assert!(
                error.starts_with("url targets a blocked address: "),
                "{url}: {error}"
            );
        }
    }

    #[tokio::test]
    async fn saas_tenants_allow_private_ranges_only() {
        assert_eq!(validate("http://172.31.4.5:8000", true).await, Ok(()));
        assert!(validate("http://169.254.169.254", true).await.is_err());
    }
}
