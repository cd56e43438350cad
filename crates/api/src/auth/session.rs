//! Control-plane session verification (the original's `middleware/session_auth.go`): a browser's
//! `Cookie` header is valid when `GET
//! {CP_UPSTREAM_URL}/cp/auth/tenant-member?slug=<MOLECULE_ORG_SLUG>` answers 200
//! `{"member":true,"user_id":"…"}`. Answers are cached per sha256(slug ‖ 0 ‖ cookie) so raw cookies
//! are never kept: 30 s when valid, 5 s when not, transport errors never.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The CP's answer is bounded by this; a slow CP must not gate every canvas render.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(3);

/// Cache lifetimes and bound.
#[derive(Debug, Clone, Copy)]
pub struct SessionCacheLimits {
    pub valid_ttl: Duration,
    pub invalid_ttl: Duration,
    pub max_entries: usize,
}

impl Default for SessionCacheLimits {
    fn default() -> Self {
        SessionCacheLimits {
            valid_ttl: Duration::from_secs(30),
            invalid_ttl: Duration::from_secs(5),
            max_entries: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    valid: bool,
    expires_at: Instant,
}

/// Verifies session cookies against the control plane. Cheap to clone; clones share the cache.
#[derive(Debug, Clone)]
pub struct SessionVerifier {
    upstream: Option<Upstream>,
    limits: SessionCacheLimits,
    cache: Arc<Mutex<HashMap<[u8; 32], Entry>>>,
}

#[derive(Debug, Clone)]
struct Upstream {
    client: reqwest::Client,
    verify_url: reqwest::Url,
    slug: String,
}

impl Upstream {
    fn new(base: &str, slug: &str) -> Option<Upstream> {
        let url = format!("{base}/cp/auth/tenant-member");
        let verify_url = match reqwest::Url::parse_with_params(&url, &[("slug", slug)]) {
            Ok(verify_url) => verify_url,
            Err(error) => {
                tracing::error!(error = %error, "session verification disabled: bad CP_UPSTREAM_URL");
                return None;
            }
        };
        match reqwest::Client::builder().timeout(VERIFY_TIMEOUT).build() {
            Ok(client) => Some(Upstream {
                client,
                verify_url,
                slug: slug.to_string(),
            }),
            Err(error) => {
                tracing::error!(error = %error, "session verification disabled: HTTP client failed");
                None
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct TenantMember {
    #[serde(default)]
    member: bool,
    #[serde(default)]
    user_id: String,
}

impl SessionVerifier {
    /// Session auth is on only when both the CP URL and the org slug are configured: better to
    /// refuse sessions than to accept them without knowing which tenant we are.
    pub fn new(
        cp_upstream_url: Option<&str>,
        org_slug: Option<&str>,
        limits: SessionCacheLimits,
    ) -> Self {
        let slug = org_slug.map(str::trim).filter(|s| !s.is_empty());
        let base = cp_upstream_url
            .map(|u| u.trim_end_matches('/'))
            .filter(|u| !u.is_empty());
        let upstream = match (base, slug) {
            (Some(base), Some(slug)) => Upstream::new(base, slug),
            _ => None,
        };
        SessionVerifier {
            upstream,
            limits,
            cache: Arc::default(),
        }
    }

    /// Whether this cookie header belongs to a member of this tenant's org.
    pub async fn verify(&self, cookie_header: &str) -> bool {
        let Some(upstream) = &self.upstream else {
            return false;
        };
        if cookie_header.is_empty() {
            return false;
        }
        let key = cache_key(&upstream.slug, cookie_header);
        if let Some(valid) = self.cached(&key) {
            return valid;
        }
        let answer = upstream
            .client
            .get(upstream.verify_url.clone())
            .header(reqwest::header::COOKIE, cookie_header)
            .header(
                reqwest::header::USER_AGENT,
                "workspace-server/session-verifier",
            )
            .send()
            .await;
        let response = match answer {
            Ok(response) => response,
            Err(error) => {
                // Not cached: a CP blip must not lock everyone out for the negative TTL.
                tracing::warn!(error = %error, "session verification: control plane unreachable");
                return false;
            }
        };
        let valid = response.status() == reqwest::StatusCode::OK
            && response
                .json::<TenantMember>()
                .await
                .is_ok_and(|body| body.member && !body.user_id.is_empty());
        self.store(key, valid);
        valid
    }

    /// Number of cached answers (for tests and metrics).
    pub fn cached_entries(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cached(&self, key: &[u8; 32]) -> Option<bool> {
        let mut cache = self.lock();
        let entry = *cache.get(key)?;
        if Instant::now() >= entry.expires_at {
            cache.remove(key);
            return None;
        }
        Some(entry.valid)
    }

    fn store(&self, key: [u8; 32], valid: bool) {
        let ttl = if valid {
            self.limits.valid_ttl
        } else {
            self.limits.invalid_ttl
        };
        let now = Instant::now();
        let mut cache = self.lock();
        if cache.len() >= self.limits.max_entries {
            cache.retain(|_, entry| entry.expires_at > now);
        }
        if cache.len() >= self.limits.max_entries {
            // Still full of live entries: drop an arbitrary batch; recency is not worth a list.
            let batch = (self.limits.max_entries / 64).max(1);
            let victims: Vec<[u8; 32]> = cache.keys().take(batch).copied().collect();
            for victim in victims {
                cache.remove(&victim);
            }
        }
        cache.insert(
            key,
            Entry {
                valid,
                expires_at: now + ttl,
            },
        );
    }
}

fn cache_key(slug: &str, cookie: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(slug.as_bytes());
    hasher.update([0u8]);
    hasher.update(cookie.as_bytes());
    hasher.finalize().into()
}
