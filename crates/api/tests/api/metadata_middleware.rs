//! The global chain: CORS → rate limit → tenant guard → security headers.

use crate::common;

use crate::common::{app, send_with, test_config, test_state};
use axum::http::StatusCode;
use sqlx::PgPool;

fn router(
    db: &PgPool,
    tune: impl FnOnce(&mut api::ApiConfig),
) -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.molecule_env = String::new();
    tune(&mut config);
    (app(test_state(db.clone(), config)), dir)
}

fn header<'a>(reply: &'a common::Reply, name: &str) -> Option<&'a str> {
    reply.headers.get(name).and_then(|v| v.to_str().ok())
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn cors_allows_listed_origins_and_refuses_others(db: PgPool) {
    let (app, _dir) = router(&db, |c| {
        c.cors_origins = vec!["https://canvas.example".into()]
    });
    let allowed = [("origin", "https://canvas.example")];
    let reply = send_with(&app, "GET", "/health", &allowed, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        header(&reply, "access-control-allow-origin"),
        Some("https://canvas.example")
    );
    assert_eq!(
        header(&reply, "access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(header(&reply, "vary"), Some("Origin"));

    let reply = send_with(
        &app,
        "GET",
        "/workspaces",
        &[("origin", "https://evil.example")],
        None,
    )
    .await;
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (StatusCode::FORBIDDEN, "")
    );
    assert!(
        header(&reply, "x-content-type-options").is_none(),
        "nothing after CORS ran"
    );
    assert!(header(&reply, "x-ratelimit-limit").is_none());

    let reply = send_with(&app, "OPTIONS", "/no/such/route", &allowed, None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        header(&reply, "access-control-allow-methods"),
        Some("GET,POST,PUT,PATCH,DELETE,OPTIONS")
    );
    assert_eq!(
        header(&reply, "access-control-allow-headers"),
        Some("Origin,Content-Type,X-Workspace-Id,Authorization")
    );
    assert_eq!(
        header(&reply, "access-control-allow-origin"),
        Some("https://canvas.example")
    );

    // Same origin passes untouched; no Origin is not CORS at all.
    let same = [
        ("origin", "http://api.example:8080"),
        ("host", "api.example:8080"),
    ];
    let reply = send_with(&app, "GET", "/health", &same, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(header(&reply, "access-control-allow-origin").is_none());
    assert_eq!(
        send_with(&app, "GET", "/health", &[], None).await.status,
        StatusCode::OK
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn cors_defaults_to_the_local_canvas(db: PgPool) {
    let (app, _dir) = router(&db, |c| c.cors_origins = vec![]);
    let reply = send_with(
        &app,
        "GET",
        "/health",
        &[("origin", "http://localhost:3001")],
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn rate_limit_counts_per_client_and_exempts_probes(db: PgPool) {
    let (app, _dir) = router(&db, |c| c.rate_limit = 3);
    let id = uuid::Uuid::new_v4();
    let uri = format!("/workspaces/{id}");
    for remaining in ["2", "1", "0"] {
        let reply = send_with(&app, "GET", &uri, &[], None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(header(&reply, "x-ratelimit-limit"), Some("3"));
        assert_eq!(header(&reply, "x-ratelimit-remaining"), Some(remaining));
        assert!(
            header(&reply, "x-ratelimit-reset")
                .unwrap()
                .parse::<u64>()
                .unwrap()
                <= 60
        );
    }
    let reply = send_with(&app, "GET", &uri, &[], None).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = header(&reply, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(
        reply.json,
        serde_json::json!({"error": "rate limit exceeded", "retry_after": retry})
    );
    for probe in ["/health", "/metrics", "/ready"] {
        let reply = send_with(&app, "GET", probe, &[], None).await;
        assert_ne!(
            reply.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{probe} is exempt"
        );
        assert!(header(&reply, "x-ratelimit-limit").is_none());
    }
    let (dev, _dir) = router(&db, |c| {
        c.rate_limit = 1;
        c.molecule_env = "development".into();
    });
    for _ in 0..3 {
        let reply = send_with(&dev, "GET", &uri, &[], None).await;
        assert_eq!(header(&reply, "x-ratelimit-limit"), Some("unlimited"));
        assert!(header(&reply, "x-ratelimit-remaining").is_none());
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn tenant_guard_hides_the_tenant_from_other_orgs(db: PgPool) {
    let org = "7f2c8d3e-0000-4000-8000-000000000001";
    let (app, _dir) = router(&db, |c| c.org_id = Some(org.into()));
    let uri = format!("/workspaces/{}", uuid::Uuid::new_v4());
    let reply = send_with(&app, "GET", &uri, &[], None).await;
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (StatusCode::NOT_FOUND, "")
    );
    let reply = send_with(
        &app,
        "GET",
        &uri,
        &[("x-molecule-org-id", "another-org")],
        None,
    )
    .await;
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (StatusCode::NOT_FOUND, "")
    );
    let reply = send_with(&app, "GET", &uri, &[("x-molecule-org-id", org)], None).await;
    assert_eq!(
        reply.json,
        serde_json::json!({"error": "workspace not found"})
    );
    let replay = format!("instance=abc;region=ord;state={org}");
    let reply = send_with(
        &app,
        "GET",
        &uri,
        &[("fly-replay-src", replay.as_str())],
        None,
    )
    .await;
    assert_eq!(reply.json["error"], "workspace not found");
    for open in ["/health", "/buildinfo", "/metrics", "/ready"] {
        assert_eq!(
            send_with(&app, "GET", open, &[], None).await.status,
            StatusCode::OK,
            "{open}"
        );
    }
    assert_eq!(
        send_with(&app, "GET", "/health/x", &[], None).await.text,
        "",
        "exact paths only"
    );
    let (canvas, _dir) = router(&db, |c| {
        c.org_id = Some(org.into());
        c.canvas_proxy_url = Some("http://127.0.0.1:3000".into());
    });
    let same_origin = [
        ("host", "acme.example"),
        ("referer", "https://acme.example/"),
    ];
    let reply = send_with(&canvas, "GET", &uri, &same_origin, None).await;
    assert_eq!(reply.json["error"], "workspace not found");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn security_headers_are_on_every_response_after_cors(db: PgPool) {
    let (app, _dir) = router(&db, |c| c.admin_token = Some("x".into()));
    let refused = send_with(&app, "GET", "/workspaces", &[], None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    for reply in [
        &refused,
        &send_with(&app, "GET", "/health", &[], None).await,
    ] {
        assert_eq!(header(reply, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(reply, "x-frame-options"), Some("DENY"));
        assert_eq!(
            header(reply, "strict-transport-security"),
            Some("max-age=31536000; includeSubDomains")
        );
        assert_eq!(
            header(reply, "referrer-policy"),
            Some("strict-origin-when-cross-origin")
        );
        assert_eq!(
            header(reply, "permissions-policy"),
            Some("camera=(), microphone=(), geolocation=()")
        );
        assert_eq!(
            header(reply, "content-security-policy"),
            Some("default-src 'self'")
        );
    }
    let canvas = send_with(&app, "GET", "/buildinfo", &[], None).await;
    assert!(
        header(&canvas, "content-security-policy")
            .unwrap()
            .contains("'unsafe-inline'")
    );
}

/// A client that sends part of its body and then stalls is cut with 408 after
/// `REQUEST_BODY_TIMEOUT`; a body that arrives in time is served.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_stalled_request_body_is_cut_with_408(db: PgPool) {
    use axum::body::Body;
    use axum::http::Request;
    use serde_json::json;
    use tower::ServiceExt;

    let (app, _dir) = router(&db, |c| {
        c.request_body_timeout = Some(std::time::Duration::from_millis(200));
    });
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    sender.send(Ok(br#"{"name":"#.to_vec())).await.unwrap();
    let stalled = Body::from_stream(tokio_stream_from(receiver));
    let request = Request::post("/workspaces")
        .header("content-type", "application/json")
        .body(stalled)
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(
        &body[..],
        br#"{"error":"request body not received in time"}"#
    );
    drop(sender);

    let reply = send_with(
        &app,
        "POST",
        "/workspaces",
        &[],
        Some(&json!({"name": "quick"})),
    )
    .await;
    assert_ne!(reply.status, StatusCode::REQUEST_TIMEOUT, "{}", reply.text);
}

/// The chunks of `receiver` as a stream (the body of a client that sends when told).
fn tokio_stream_from(
    receiver: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    })
}

/// `/ws` with `CORS_ORIGINS` set: the original's upgrader refused a missing `Origin` too
/// (`handlers/socket.go:17-31`); without `CORS_ORIGINS` anything goes.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn live_stream_refuses_a_missing_origin_when_cors_origins_is_set(db: PgPool) {
    let upgrade = [
        ("connection", "upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let with_origin = |origin: &'static str| {
        let mut headers = upgrade.to_vec();
        headers.push(("origin", origin));
        headers
    };
    let (listed, _dir) = router(&db, |c| {
        c.cors_origins = vec!["https://canvas.example".into()]
    });
    let reply = send_with(&listed, "GET", "/ws", &upgrade, None).await;
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (StatusCode::FORBIDDEN, r#"{"error":"origin not allowed"}"#)
    );
    // A listed origin passes the check; in-process there is no connection to upgrade, so the
    // answer is the upgrade's own refusal, not 403.
    let reply = send_with(
        &listed,
        "GET",
        "/ws",
        &with_origin("https://canvas.example"),
        None,
    )
    .await;
    assert_ne!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.status.is_client_error(), "{}", reply.status);
    // The tenant's own origin passes CORS (same host) but, unlisted, not the upgrader.
    let mut same_host = with_origin("https://tenant.example");
    same_host.push(("host", "tenant.example"));
    let reply = send_with(&listed, "GET", "/ws", &same_host, None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    let (open, _dir) = router(&db, |c| c.cors_origins = vec![]);
    let reply = send_with(&open, "GET", "/ws", &upgrade, None).await;
    assert_ne!(reply.status, StatusCode::FORBIDDEN);
}
