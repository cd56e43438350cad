//! Per-client-IP fixed-window rate limit (the original's `middleware/ratelimit.go`): `RATE_LIMIT`
//! requests per minute, `X-RateLimit-Limit/Remaining/Reset` on every response, 429 with
//! `Retry-After` over the limit. The client IP is the TCP peer, or the `X-Forwarded-For` client
//! when the peer is one of `TRUSTED_PROXIES`. `RATE_LIMIT=0` turns the limiter off.
//! `/health`, `/ready` and `/metrics` are exempt (the original meant to exempt `/metrics` but did
//! not). Dev mode (and `RATE_LIMIT=0`) only announces `X-RateLimit-Limit: unlimited`. Expired windows are pruned once
//! per window length, so the map holds at most the clients of the last minute.

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::sync::Middleware;

const EXEMPT_PATHS: [&str; 3] = ["/health", "/ready", "/metrics"];

/// The limiter's state; cheap to clone.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: u32,
    window: Duration,
    /// Dev mode: count nothing, only announce "unlimited".
    unlimited: bool,
    windows: Mutex<Windows>,
}

#[derive(Debug)]
struct Windows {
    by_client: HashMap<IpAddr, Window>,
    last_prune: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
}

/// 429's body: when the window resets, in seconds.
#[derive(Debug, Serialize)]
struct RateLimited {
    error: &'static str,
    retry_after: u64,
}
/// The outcome for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub remaining: u32,
    /// Whole seconds until the window refills (at least 1).
    pub reset_secs: u64,
}

impl RateLimiter {
    pub fn new(limit_per_minute: u32, unlimited: bool) -> Self {
        Self::with_window(limit_per_minute, Duration::from_secs(60), unlimited)
    }

    pub fn with_window(limit: u32, window: Duration, unlimited: bool) -> Self {
        let windows = Windows {
            by_client: HashMap::new(),
            last_prune: Instant::now(),
        };
        RateLimiter {
            inner: Arc::new(Inner {
                limit,
                window,
                unlimited,
                windows: Mutex::new(windows),
            }),
        }
    }

    /// Counts one request of `client` at `now`.
    pub fn check(&self, client: IpAddr, now: Instant) -> Decision {
        let inner = &self.inner;
        let mut windows = inner
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if now.saturating_duration_since(windows.last_prune) >= inner.window {
            let window = inner.window;
            windows
                .by_client
                .retain(|_, w| now.saturating_duration_since(w.started) < window);
            windows.last_prune = now;
        }
        let entry = windows.by_client.entry(client).or_insert(Window {
            started: now,
            count: 0,
        });
        if now.saturating_duration_since(entry.started) >= inner.window {
            *entry = Window {
                started: now,
                count: 0,
            };
        }
        let elapsed = now.saturating_duration_since(entry.started);
        let reset_secs = inner
            .window
            .saturating_sub(elapsed)
            .as_secs_f64()
            .ceil()
            .max(1.0) as u64;
        if entry.count >= inner.limit {
            return Decision {
                allowed: false,
                remaining: 0,
                reset_secs,
            };
        }
        entry.count += 1;
        Decision {
            allowed: true,
            remaining: inner.limit - entry.count,
            reset_secs,
        }
    }

    /// Clients currently tracked (for tests of the pruning).
    pub fn tracked_clients(&self) -> usize {
        self.inner
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .by_client
            .len()
    }
}

/// What the response reports of the limit.
#[derive(Debug)]
pub enum Report {
    /// A path outside the limit: nothing.
    Exempt,
    /// No limit: `X-RateLimit-Limit: unlimited`.
    Unlimited,
    /// The request's share of the window.
    Counted(Decision),
}

impl Middleware for RateLimiter {
    type Carry = Report;

    fn before(&self, request: &mut Request) -> ControlFlow<Response, Report> {
        if EXEMPT_PATHS.contains(&request.uri().path()) {
            return ControlFlow::Continue(Report::Exempt);
        }
        if self.inner.unlimited {
            return ControlFlow::Continue(Report::Unlimited);
        }
        let client = super::client_addr::ClientAddr::of(request);
        let decision = self.check(client, Instant::now());
        if decision.allowed {
            return ControlFlow::Continue(Report::Counted(decision));
        }
        let body = RateLimited {
            error: "rate limit exceeded",
            retry_after: decision.reset_secs,
        };
        let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert("retry-after", HeaderValue::from(decision.reset_secs));
        set_headers(headers, self.inner.limit, decision);
        ControlFlow::Break(response)
    }

    fn after(&self, report: Report, mut response: Response) -> Response {
        let headers = response.headers_mut();
        match report {
            Report::Exempt => {}
            Report::Unlimited => {
                headers.insert("x-ratelimit-limit", HeaderValue::from_static("unlimited"));
            }
            // A route with a limiter of its own (the org-token mint) reports that one, as in
            // the original where the route's limiter wrote its headers last (router.go:641-653
            // at 624ef4d0).
            Report::Counted(decision) if !headers.contains_key("x-ratelimit-limit") => {
                set_headers(headers, self.inner.limit, decision);
            }
            Report::Counted(_) => {}
        }
        response
    }
}

fn set_headers(headers: &mut HeaderMap, limit: u32, decision: Decision) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
    headers.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(decision.remaining),
    );
    headers.insert("x-ratelimit-reset", HeaderValue::from(decision.reset_secs));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn window_counts_then_refuses_then_refills() {
        let limiter = RateLimiter::with_window(2, Duration::from_secs(60), false);
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let t0 = Instant::now();
        assert_eq!(limiter.check(ip, t0).remaining, 1);
        assert_eq!(limiter.check(ip, t0).remaining, 0);
        let refused = limiter.check(ip, t0 + Duration::from_secs(10));
        assert!(!refused.allowed);
        assert_eq!(refused.reset_secs, 50);
        assert!(limiter.check(ip, t0 + Duration::from_secs(61)).allowed);
    }

    #[test]
    fn old_windows_are_pruned() {
        let limiter = RateLimiter::with_window(5, Duration::from_secs(60), false);
        let t0 = Instant::now();
        for i in 0..100u8 {
            limiter.check(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)), t0);
        }
        assert_eq!(limiter.tracked_clients(), 100);
        limiter.check(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            t0 + Duration::from_secs(120),
        );
        assert_eq!(limiter.tracked_clients(), 1);
    }
}
