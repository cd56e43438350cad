//! Workspace tokens and org tokens: shown once, stored hashed, listed without secrets, revoked
//! effective on the very next request, the per-workspace cap and the org-token mint limiter.

use std::collections::HashSet;

use crate::common::{
    app, insert_workspace, send, send_raw_with, send_with, test_config, test_state,
};
use api::ApiConfig;
use axum::http::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

const ADMIN: &str = "tokens-admin-token";

fn strict(dir: &std::path::Path) -> ApiConfig {
    let mut config = test_config(dir);
    config.molecule_env = String::new();
    config.admin_token = Some(ADMIN.into());
    config
}

/// One request with `bearer` as the `Authorization` value.
async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    bearer: &str,
    body: Option<&serde_json::Value>,
) -> crate::common::Reply {
    send_with(app, method, uri, &[("authorization", bearer)], body).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_minted_token_is_shown_once_stored_hashed_and_revoked_at_once(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let app = app(test_state(db.clone(), strict(dir.path())));
    let id = insert_workspace(&db, "w", "langgraph", None).await;
    let admin = bearer(ADMIN);
    let url = format!("/workspaces/{id}/tokens");

    let minted = call(&app, "POST", &url, &admin, None).await;
    assert_eq!(minted.status, StatusCode::CREATED, "{}", minted.text);
    let token = minted.json["auth_token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 43);
    assert_eq!(minted.json["workspace_id"], id.to_string());
    assert_eq!(
        minted.json["message"],
        "Save this token now — it cannot be retrieved again."
    );
    let stored: (Vec<u8>, String) =
        sqlx::query_as("SELECT token_hash, prefix FROM workspace_auth_tokens")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(stored.0, Sha256::digest(token.as_bytes()).to_vec());
    assert_eq!(stored.1, token[..8]);

    // The token works, and the listing shows its prefix, never the token.
    let own = bearer(&token);
    let list = call(&app, "GET", &url, &own, None).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json["count"], 1);
    let entry = &list.json["tokens"][0];
    assert_eq!(entry["prefix"], &token[..8]);
    assert!(!list.text.contains(&token));
    let token_id = entry["id"].as_str().unwrap().to_string();
    assert!(
        entry["last_used_at"].is_string(),
        "used by this very request"
    );

    // The token revokes itself; the next request with it is refused.
    let revoked = call(&app, "DELETE", &format!("{url}/{token_id}"), &own, None).await;
    assert_eq!(revoked.json, json!({"status": "revoked"}));
    let refused = call(&app, "GET", &url, &own, None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.json,
        json!({"error": "invalid workspace auth token"})
    );
    let again = call(&app, "DELETE", &format!("{url}/{token_id}"), &admin, None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(
        again.json,
        json!({"error": "token not found or already revoked"})
    );
    let bad = call(&app, "DELETE", &format!("{url}/nope"), &admin, None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json, json!({"error": "invalid token ID"}));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn listing_pages_and_the_cap_of_fifty(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let app = app(test_state(db.clone(), test_config(dir.path())));
    let id = insert_workspace(&db, "w", "langgraph", None).await;
    let url = format!("/workspaces/{id}/tokens");
    for _ in 0..50 {
        assert_eq!(
            send(&app, "POST", &url, None).await.status,
            StatusCode::CREATED
        );
    }
    let capped = send(&app, "POST", &url, None).await;
    assert_eq!(capped.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        capped.json,
        json!({"error": "maximum 50 active tokens per workspace"})
    );

    let first = send(&app, "GET", &format!("{url}?limit=20&offset=0"), None).await;
    let second = send(&app, "GET", &format!("{url}?limit=20&offset=20"), None).await;
    assert_eq!(first.json["count"], 20);
    let ids: HashSet<String> = [&first, &second]
        .iter()
        .flat_map(|r| r.json["tokens"].as_array().unwrap().iter())
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 40, "pages do not overlap");
    // Out-of-range values fall back to the defaults (50, 0).
    let fallback = send(&app, "GET", &format!("{url}?limit=500&offset=-1"), None).await;
    assert_eq!(fallback.json["count"], 50);
    assert!(fallback.json["tokens"][0]["last_used_at"].is_null());
    let ghost = send(
        &app,
        "POST",
        &format!("/workspaces/{}/tokens", Uuid::new_v4()),
        None,
    )
    .await;
    assert_eq!(ghost.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn org_tokens_mint_list_authenticate_and_revoke(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let app = app(test_state(db.clone(), strict(dir.path())));
    let admin = bearer(ADMIN);

    let minted = call(
        &app,
        "POST",
        "/org/tokens",
        &admin,
        Some(&json!({"name": "zapier"})),
    )
    .await;
    assert_eq!(minted.status, StatusCode::OK, "{}", minted.text);
    let token = minted.json["auth_token"].as_str().unwrap().to_string();
    assert_eq!(minted.json["name"], "zapier");
    assert_eq!(minted.json["prefix"], &token[..8]);
    assert_eq!(
        minted.json["warning"],
        "copy this token now; it will not be shown again"
    );

    // Minted by an org token: the provenance names it; no body → unnamed.
    let by_org = send_raw_with(
        &app,
        "POST",
        "/org/tokens",
        &[("authorization", &bearer(&token))],
        Vec::new(),
    )
    .await;
    assert_eq!(by_org.status, StatusCode::OK, "{}", by_org.text);
    assert!(by_org.json.get("name").is_none());

    let list = call(&app, "GET", "/org/tokens", &admin, None).await;
    assert_eq!(list.json["count"], 2);
    assert!(!list.text.contains(&token));
    let tokens = list.json["tokens"].as_array().unwrap();
    let newest = &tokens[0];
    assert_eq!(newest["created_by"], format!("org-token:{}", &token[..8]));
    assert!(newest.get("name").is_none() && newest.get("last_used_at").is_none());
    assert_eq!(tokens[1]["created_by"], "admin-token");
    assert!(
        tokens[1]["last_used_at"].is_string(),
        "used to mint the second"
    );

    let long = call(
        &app,
        "POST",
        "/org/tokens",
        &admin,
        Some(&json!({"name": "n".repeat(101)})),
    )
    .await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST);
    assert_eq!(long.json, json!({"error": "name too long (max 100 chars)"}));

    let id = minted.json["id"].as_str().unwrap();
    let revoked = call(&app, "DELETE", &format!("/org/tokens/{id}"), &admin, None).await;
    assert_eq!(revoked.json, json!({"revoked": id}));
    let refused = call(&app, "GET", "/org/tokens", &bearer(&token), None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "revoked at once");
    let again = call(&app, "DELETE", &format!("/org/tokens/{id}"), &admin, None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let bad = call(&app, "DELETE", "/org/tokens/nope", &admin, None).await;
    assert_eq!(bad.json, json!({"error": "invalid token ID"}));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_mint_limiter_allows_ten_per_hour_after_auth(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let app = app(test_state(db.clone(), strict(dir.path())));
    let admin = bearer(ADMIN);
    // Refused callers do not use the budget.
    for _ in 0..12 {
        let refused = send(&app, "POST", "/org/tokens", None).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    }
    for n in 0..10 {
        let minted = call(&app, "POST", "/org/tokens", &admin, None).await;
        assert_eq!(minted.status, StatusCode::OK, "mint {n}: {}", minted.text);
        let remaining = (9 - n).to_string();
        assert_eq!(minted.headers["x-ratelimit-remaining"], remaining.as_str());
    }
    let limited = call(&app, "POST", "/org/tokens", &admin, None).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.json["error"], "rate limit exceeded");
    assert!(limited.json["retry_after"].as_u64().unwrap() > 3000);
    assert!(limited.headers.contains_key("retry-after"));
    // The route's headers are the mint limiter's, not the global limiter's.
    assert_eq!(limited.headers["x-ratelimit-limit"], "10");
    assert_eq!(limited.headers["x-ratelimit-remaining"], "0");
    // Listing is not limited.
    let list = call(&app, "GET", "/org/tokens", &admin, None).await;
    assert_eq!(list.json["count"], 10);
}
