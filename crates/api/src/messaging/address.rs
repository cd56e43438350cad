//! Which agent addresses the proxy may call (the original's `isSafeURL`, `handlers/ssrf.go:56-206`
//! at 624ef4d0): the rules depend on the deploy mode, and every address a name resolves to must
//! pass before any request is sent.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ApiConfig;

/// Resolving a hostname gives up after this long.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an allowed hostname URL is remembered ([`VerdictCache`]).
pub const VERDICT_TTL: Duration = Duration::from_secs(5);
/// URLs remembered at most; a full cache is emptied.
const VERDICT_CAPACITY: usize = 10_000;

/// Allowed URLs whose host is a name, remembered for [`VERDICT_TTL`], so a busy agent's calls do
/// not each resolve its name (a blocking `getaddrinfo` on the runtime's blocking pool). Only
/// allowed verdicts are kept: a refused or unresolvable name is checked again on the next call.
/// The proxy's own connection resolves the name anyway; a name that moved to a refused address
/// is refused at most [`VERDICT_TTL`] later.
#[derive(Debug, Default)]
pub struct VerdictCache {
    allowed: Mutex<HashMap<(String, bool, bool), Instant>>,
}

impl VerdictCache {
    /// [`AddressPolicy::allows_url`], remembered.
    pub async fn allows_url(&self, policy: AddressPolicy, url: &str) -> bool {
        let key = (url.to_string(), policy.private, policy.loopback);
        let fresh = |at: &Instant| at.elapsed() < VERDICT_TTL;
        if self.entries().get(&key).is_some_and(fresh) {
            return true;
        }
        let allowed = policy.allows_url(url).await;
        if allowed && policy.names_a_host(url) {
            let mut entries = self.entries();
            if entries.len() >= VERDICT_CAPACITY {
                entries.clear();
            }
            entries.insert(key, Instant::now());
        }
        allowed
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<(String, bool, bool), Instant>> {
        self.allowed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How permissive the address rules are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Private ranges (RFC 1918, fd00::/8) are reachable: a SaaS tenant's agents live in its VPC.
    pub private: bool,
    /// Loopback is reachable: development only.
    pub loopback: bool,
}

impl AddressPolicy {
    /// `MOLECULE_DEPLOY_MODE` decides SaaS (`saas`) or self-hosted (`self-hosted`, `selfhosted`,
    /// `standalone`, anything else); unset, a set `MOLECULE_ORG_ID` means SaaS
    /// (`handlers/registry.go:51-69`). Dev mode is `MOLECULE_ENV` alone (`ssrf.go:28-31`).
    pub fn from_config(config: &ApiConfig) -> Self {
        let saas = match config.deploy_mode.trim().to_lowercase().as_str() {
            "" => config.org_id.is_some(),
            mode => mode == "saas",
        };
        let dev = matches!(config.molecule_env.as_str(), "development" | "dev");
        Self {
            private: saas || dev,
            loopback: dev,
        }
    }

    /// Whether the proxy may send a request to `ip`.
    pub fn allows(self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => self.allows_v4(v4),
                None => self.allows_v6(v6),
            },
            IpAddr::V4(v4) => self.allows_v4(v4),
        }
    }

    fn allows_v4(self, ip: Ipv4Addr) -> bool {
        let [a, b, c, _] = ip.octets();
        let never = ip.is_unspecified()
            || ip.is_link_local()
            || (a == 224 && b == 0 && c == 0)
            || (a, b, c) == (192, 0, 2)
            || (a, b, c) == (198, 51, 100)
            || (a, b, c) == (203, 0, 113)
            || (a == 100 && (64..128).contains(&b));
        if never {
            return false;
        }
        if ip.is_loopback() {
            return self.loopback;
        }
        !ip.is_private() || self.private
    }

    fn allows_v6(self, ip: Ipv6Addr) -> bool {
        let first = ip.segments()[0];
        let never = ip.is_unspecified()
            || (first & 0xffc0) == 0xfe80
            || first == 0xff02
            || first == 0xff01
            || (first & 0xff00) == 0xfc00;
        if never {
            return false;
        }
        if ip.is_loopback() {
            return self.loopback;
        }
        (first & 0xff00) != 0xfd00 || self.private
    }

    /// Whether `url`'s host is a name (not an address literal).
    fn names_a_host(self, url: &str) -> bool {
        let Ok(parsed) = reqwest::Url::parse(url) else {
            return false;
        };
        parsed.host_str().is_some_and(|host| {
            let literal = host.trim_start_matches('[').trim_end_matches(']');
            literal.parse::<IpAddr>().is_err()
        })
    }

    /// Whether `url` is an http(s) URL whose every address is allowed. A name that does not
    /// resolve, or resolves to nothing, is refused.
    pub async fn allows_url(self, url: &str) -> bool {
        let Ok(parsed) = reqwest::Url::parse(url) else {
            return false;
        };
        if !matches!(parsed.scheme(), "http" | "https") {
            return false;
        }
        let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
            return false;
        };
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return self.allows(ip);
        }
        let port = parsed.port_or_known_default().unwrap_or(80);
        let lookup = tokio::net::lookup_host((host, port));
        let Ok(Ok(addresses)) = tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await else {
            return false;
        };
        let mut any = false;
        for address in addresses {
            if !self.allows(address.ip()) {
                return false;
            }
            any = true;
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: AddressPolicy = AddressPolicy {
        private: false,
        loopback: false,
    };
    const SAAS: AddressPolicy = AddressPolicy {
        private: true,
        loopback: false,
    };
    const DEV: AddressPolicy = AddressPolicy {
        private: true,
        loopback: true,
    };

    fn allowed(policy: AddressPolicy, ip: &str) -> bool {
        policy.allows(ip.parse().unwrap())
    }

    #[test]
    fn the_table_of_the_original() {
        // (address, strict, saas, dev)
        let table = [
            ("127.0.0.1", false, false, true),
            ("::1", false, false, true),
            ("0.0.0.0", false, false, false),
            ("::", false, false, false),
            ("169.254.169.254", false, false, false),
            ("fe80::1", false, false, false),
            ("224.0.0.5", false, false, false),
            ("ff02::1", false, false, false),
            ("192.0.2.1", false, false, false),
            ("198.51.100.7", false, false, false),
            ("203.0.113.9", false, false, false),
            ("100.64.0.1", false, false, false),
            ("10.1.2.3", false, true, true),
            ("172.16.0.1", false, true, true),
            ("192.168.1.1", false, true, true),
            ("fd12::1", false, true, true),
            ("fc00::1", false, false, false),
            ("8.8.8.8", true, true, true),
            ("2606:4700::1111", true, true, true),
            ("::ffff:169.254.169.254", false, false, false),
        ];
        for (ip, strict, saas, dev) in table {
            assert_eq!(allowed(STRICT, ip), strict, "strict {ip}");
            assert_eq!(allowed(SAAS, ip), saas, "saas {ip}");
            assert_eq!(allowed(DEV, ip), dev, "dev {ip}");
        }
    }

    #[test]
    fn deploy_mode_then_org_id_decide_saas() {
        let config = |mode: &str, org: Option<&str>, env: &str| ApiConfig {
            deploy_mode: mode.into(),
            org_id: org.map(Into::into),
            molecule_env: env.into(),
            ..ApiConfig::default()
        };
        assert_eq!(AddressPolicy::from_config(&config("", None, "")), STRICT);
        assert_eq!(AddressPolicy::from_config(&config("", Some("o"), "")), SAAS);
        assert_eq!(AddressPolicy::from_config(&config("SaaS", None, "")), SAAS);
        let self_hosted = config("self-hosted", Some("o"), "");
        assert_eq!(AddressPolicy::from_config(&self_hosted), STRICT);
        assert_eq!(AddressPolicy::from_config(&config("", None, "dev")), DEV);
    }

    #[tokio::test]
    async fn urls_need_http_and_allowed_addresses() {
        assert!(DEV.allows_url("http://127.0.0.1:8000/").await);
        assert!(!STRICT.allows_url("http://127.0.0.1:8000/").await);
        assert!(!DEV.allows_url("ftp://127.0.0.1/").await);
        assert!(!DEV.allows_url("not a url").await);
        assert!(DEV.allows_url("http://localhost:9/").await);
        assert!(!STRICT.allows_url("http://localhost:9/").await);
    }
}
