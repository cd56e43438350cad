//! Black-box: the real `workspace-server` binary driven over HTTP with the calls the Go original's
//! end-to-end suite makes (`tests/e2e/test_api.sh` at 624ef4d0, its workspace and token steps,
//! checked the way it greps: substrings of compact JSON) and the
//! canvas ConfigTab's load-and-save sequence.

use crate::harness::TestServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

const ADMIN: &str = "blackbox-admin-token";
const KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// The raw body text (the e2e suite greps it, so the exact formatting matters).
async fn raw(
    server: &TestServer,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> (StatusCode, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = server.client.request(method, server.url(path));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn the_original_e2e_steps_pass() {
    // Like the e2e workflow: no MOLECULE_ENV, no ADMIN_TOKEN (test tokens on, tier-3 admin).
    let server = TestServer::start().await;
    let (status, text) = raw(&server, "GET", "/health", None, None).await;
    assert_eq!(status, 200);
    assert!(text.contains(r#""status":"ok""#));
    let (_, text) = raw(&server, "GET", "/workspaces", None, None).await;
    assert_eq!(text, "[]");

    let (status, created) = server
        .post("/workspaces", &json!({"name": "Echo Agent", "tier": 1}))
        .await;
    assert_eq!(status, 201);
    assert_eq!(created["status"], "provisioning");
    let echo = created["id"].as_str().unwrap().to_string();
    let (status, minted) = server
        .get(&format!("/admin/workspaces/{echo}/test-token"))
        .await;
    assert_eq!(status, 200);
    let token = minted["auth_token"].as_str().unwrap().to_string();

    let body = json!({"name": "Summarizer", "tier": 1});
    let (status, created) = server
        .request("POST", "/workspaces", Some(&body), Some(&token))
        .await;
    assert_eq!(
        (status, created["status"].as_str()),
        (StatusCode::CREATED, Some("provisioning"))
    );
    let summarizer = created["id"].as_str().unwrap().to_string();
    let (_, listed) = server
        .request("GET", "/workspaces", None, Some(&token))
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    // Tokens exist now: no more fail-open.
    let (status, refused) = server.get("/workspaces").await;
    assert_eq!(
        (status, refused),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "admin auth required"})
        )
    );

    let (_, text) = raw(&server, "GET", &format!("/workspaces/{echo}"), None, None).await;
    assert!(
        text.contains(r#""name":"Echo Agent""#) && text.contains(r#""agent_card":null"#),
        "{text}"
    );

    let (_, text) = raw(
        &server,
        "PATCH",
        &format!("/workspaces/{echo}"),
        Some(&token),
        Some(&json!({"x": 100, "y": 200})),
    )
    .await;
    assert!(text.contains(r#""status":"updated""#));
    let (_, text) = raw(&server, "GET", &format!("/workspaces/{echo}"), None, None).await;
    assert!(
        text.contains(r#""x":100"#) && text.contains(r#""y":200"#),
        "{text}"
    );
    let rename = json!({"name": "Echo Agent v2"});
    let (_, text) = raw(
        &server,
        "PATCH",
        &format!("/workspaces/{echo}"),
        Some(&token),
        Some(&rename),
    )
    .await;
    assert!(text.contains(r#""status":"updated""#));
    let (_, text) = raw(&server, "GET", &format!("/workspaces/{echo}"), None, None).await;
    assert!(text.contains(r#""name":"Echo Agent v2""#));
    let (_, text) = raw(&server, "GET", "/workspaces", Some(&token), None).await;
    assert!(text.contains(r#""current_task""#));

    // A sibling with the same name: 409, not 500.
    let (status, body) = server
        .request(
            "POST",
            "/workspaces",
            Some(&json!({"name": "Summarizer"})),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body["error"],
        "a workspace with this name already exists under the same parent"
    );
    // shared-context stays gone.
    let (status, _) = server
        .request(
            "GET",
            &format!("/workspaces/{echo}/shared-context"),
            None,
            Some(&token),
        )
        .await;
    assert_ne!(status, StatusCode::OK);

    // Deleting with the token sent twice: the first header wins.
    let response = server
        .client
        .delete(server.url(&format!("/workspaces/{echo}")))
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", "Bearer something-else")
        .send()
        .await
        .unwrap();
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains(r#""status":"removed""#)
    );
    // Echo's token is revoked and no other live token exists: fail-open again.
    let (_, listed) = server.get("/workspaces").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let (status, gone) = server.get(&format!("/workspaces/{echo}")).await;
    assert_eq!(
        (status, gone["error"].as_str()),
        (StatusCode::GONE, Some("workspace removed"))
    );
    let (status, _) = server
        .get(&format!("/workspaces/{echo}?include_removed=true"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server
        .delete(&format!("/workspaces/{summarizer}?confirm=true"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, text) = raw(&server, "GET", "/workspaces", None, None).await;
    assert_eq!(text, "[]");
}

#[tokio::test]
async fn the_canvas_config_tab_loads_and_saves() {
    let server = TestServer::builder()
        .env("ADMIN_TOKEN", ADMIN)
        .env("SECRETS_ENCRYPTION_KEY", KEY_B64)
        .env("CORS_ORIGINS", "https://canvas.example")
        .start()
        .await;
    let create = json!({"name": "Config Tab", "tier": 2, "runtime": "hermes"});
    let (status, created) = server
        .request("POST", "/workspaces", Some(&create), Some(ADMIN))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["id"].as_str().unwrap().to_string();

    // The canvas's client: credentials, its Origin, the baked admin token.
    let canvas_get = |path: String| {
        let request = server
            .client
            .get(server.url(&path))
            .header("origin", "https://canvas.example")
            .bearer_auth(ADMIN);
        async move {
            let response = request.send().await.unwrap();
            let allowed = response
                .headers()
                .get("access-control-allow-origin")
                .cloned();
            assert_eq!(allowed.unwrap(), "https://canvas.example");
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()
        }
    };
    // loadConfig: the three metadata GETs at once.
    let (workspace, model, provider) = tokio::join!(
        canvas_get(format!("/workspaces/{id}")),
        canvas_get(format!("/workspaces/{id}/model")),
        canvas_get(format!("/workspaces/{id}/provider")),
    );
    assert_eq!(
        (workspace["runtime"].as_str(), workspace["tier"].as_i64()),
        (Some("hermes"), Some(2))
    );
    assert_eq!(model, json!({"model": "", "source": "default"}));
    assert_eq!(provider, json!({"provider": "", "source": "default"}));

    // handleSave: PATCH, then PUT model, then PUT provider.
    let patch = json!({"name": "Config Tab 2", "tier": 3, "runtime": "langgraph"});
    let (status, body) = server
        .request(
            "PATCH",
            &format!("/workspaces/{id}"),
            Some(&patch),
            Some(ADMIN),
        )
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"status": "updated"}))
    );
    let (status, body) = server
        .request(
            "PUT",
            &format!("/workspaces/{id}/model"),
            Some(&json!({"model": "minimax/MiniMax-M2.7"})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"status": "saved", "model": "minimax/MiniMax-M2.7"})
        )
    );
    let (status, body) = server
        .request(
            "PUT",
            &format!("/workspaces/{id}/provider"),
            Some(&json!({"provider": "minimax"})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"status": "saved", "provider": "minimax"})
        )
    );

    let (workspace, model, provider) = tokio::join!(
        canvas_get(format!("/workspaces/{id}")),
        canvas_get(format!("/workspaces/{id}/model")),
        canvas_get(format!("/workspaces/{id}/provider")),
    );
    assert_eq!(workspace["name"], "Config Tab 2");
    assert_eq!(workspace["runtime"], "langgraph");
    assert_eq!(model["model"], "minimax/MiniMax-M2.7");
    assert_eq!(provider["provider"], "minimax");

    // Stored encrypted, and each PUT asked for a restart instead of doing one.
    let pool = server.pool().await.unwrap();
    let versions: Vec<i32> = sqlx::query_scalar("SELECT encryption_version FROM workspace_secrets")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(versions, vec![1, 1]);
    let restarts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM structure_events WHERE event_type = 'WORKSPACE_RESTART_REQUESTED'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(restarts, 2);

    // The auth matrix of the original's end-to-end suite over the wire.
    let (status, body) = server.get(&format!("/workspaces/{id}/model")).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "missing workspace auth token"})
        )
    );
    let (_, other) = server
        .request(
            "POST",
            "/workspaces",
            Some(&json!({"name": "other"})),
            Some(ADMIN),
        )
        .await;
    let other_id = other["id"].as_str().unwrap();
    let (_, minted) = server
        .request(
            "GET",
            &format!("/admin/workspaces/{other_id}/test-token"),
            None,
            Some(ADMIN),
        )
        .await;
    let other_token = minted["auth_token"].as_str().unwrap();
    let (status, body) = server
        .request(
            "GET",
            &format!("/workspaces/{id}/model"),
            None,
            Some(other_token),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid workspace auth token"})
        )
    );
    let (status, body) = server.get("/workspaces").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "admin auth required"})
        )
    );
    // A foreign origin is refused before anything else.
    let response = server
        .client
        .get(server.url("/health"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}
