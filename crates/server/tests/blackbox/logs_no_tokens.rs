//! Tokens never appear in the logs (issue 7.1): the real binary at `RUST_LOG=debug`, in both log
//! formats, mints, uses and refuses tokens; its captured stdout and stderr must not contain any
//! of them, nor their base64 or hex forms.

use crate::harness::TestServer;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ADMIN: &str = "log-audit-admin-token-3f9b2d";
/// Looks like a real token (43 base64url characters) but names nothing.
const GARBAGE: &str = "Zm9yZ2VkLXRva2VuLXRoYXQtbmFtZXMtbm90aGluZy0";

#[tokio::test]
async fn tokens_stay_out_of_json_debug_logs() {
    exercise_and_audit("json").await;
}

#[tokio::test]
async fn tokens_stay_out_of_text_debug_logs() {
    exercise_and_audit("text").await;
}

async fn exercise_and_audit(format: &str) {
    let mut server = TestServer::builder()
        .env("ADMIN_TOKEN", ADMIN)
        .env("RUST_LOG", "debug")
        .env("LOG_FORMAT", format)
        .start()
        .await;
    let tokens = exercise(&server).await;
    server.terminate();
    let logs = server.logs();

    // The audit looks at a real debug log of these very requests.
    let debug_marker = if format == "json" {
        "\"level\":\"DEBUG\""
    } else {
        " DEBUG "
    };
    assert!(
        logs.contains(debug_marker),
        "RUST_LOG=debug produced no debug lines"
    );
    assert!(
        logs.contains("/registry/register") && logs.contains("/test-token"),
        "the requests are not in the log"
    );
    let mut leaks = Vec::new();
    for token in &tokens {
        for (form, text) in encoded_forms(token) {
            if logs.contains(&text) {
                leaks.push(format!("{form} of {}…", &token[..6]));
            }
        }
    }
    assert!(leaks.is_empty(), "tokens in the {format} log: {leaks:?}");
}

/// Mints tokens every way the server can, uses them, fails with others; returns every token
/// that crossed the wire.
async fn exercise(server: &TestServer) -> Vec<String> {
    let request = |method: &'static str,
                   path: String,
                   body: Option<Value>,
                   bearer: Option<String>| async move {
        server
            .request(method, &path, body.as_ref(), bearer.as_deref())
            .await
    };
    let admin = || Some(ADMIN.to_string());
    let (status, created) = request(
        "POST",
        "/workspaces".into(),
        Some(json!({"name": "agent"})),
        admin(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_string();

    // First registration mints the agent's token.
    let register = json!({"id": id, "url": "http://8.8.8.8:8000", "agent_card": {"name": "agent"}});
    let (status, registered) = request(
        "POST",
        "/registry/register".into(),
        Some(register.clone()),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{registered}");
    let agent_token = registered["auth_token"].as_str().unwrap().to_string();
    // The test-token bootstrap.
    let (status, minted) = request(
        "GET",
        format!("/admin/workspaces/{id}/test-token"),
        None,
        admin(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{minted}");
    let test_token = minted["auth_token"].as_str().unwrap().to_string();
    // An external workspace's connection block.
    let external = json!({"name": "outside", "external": true});
    let (status, created) = request("POST", "/workspaces".into(), Some(external), admin()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let external_token = created["connection"]["auth_token"]
        .as_str()
        .unwrap()
        .to_string();
    let external_id = created["id"].as_str().unwrap().to_string();

    // Authenticated calls with each token.
    for (method, path, body, bearer) in [
        ("GET", format!("/workspaces/{id}/model"), None, &agent_token),
        (
            "PUT",
            format!("/workspaces/{id}/model"),
            Some(json!({"model": "anthropic/x"})),
            &test_token,
        ),
        (
            "PATCH",
            format!("/workspaces/{id}"),
            Some(json!({"collapsed": true})),
            &agent_token,
        ),
        ("GET", format!("/workspaces/{id}/state"), None, &test_token),
        (
            "POST",
            "/registry/register".to_string(),
            Some(register.clone()),
            &agent_token,
        ),
        (
            "POST",
            "/registry/heartbeat".to_string(),
            Some(json!({"workspace_id": id})),
            &agent_token,
        ),
        (
            "GET",
            format!("/workspaces/{external_id}/files"),
            None,
            &external_token,
        ),
        ("GET", "/workspaces".to_string(), None, &ADMIN.to_string()),
    ] {
        let (status, body) = request(method, path.clone(), body, Some(bearer.clone())).await;
        assert!(status.is_success(), "{method} {path}: {status} {body}");
    }
    // Refusals: a garbage bearer, another workspace's token, a workspace token on admin routes.
    for (method, path, bearer) in [
        (
            "GET",
            format!("/workspaces/{id}/model"),
            GARBAGE.to_string(),
        ),
        ("GET", "/workspaces".to_string(), GARBAGE.to_string()),
        (
            "GET",
            format!("/workspaces/{id}/model"),
            external_token.clone(),
        ),
        ("GET", "/workspaces".to_string(), agent_token.clone()),
        (
            "POST",
            "/registry/heartbeat".to_string(),
            external_token.clone(),
        ),
    ] {
        let body = (method == "POST").then(|| json!({"workspace_id": id}));
        let (status, answer) = request(method, path.clone(), body, Some(bearer)).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: {answer}"
        );
    }
    // A token in a query string (where a careless client might put one) is not logged either.
    let (status, _) = request(
        "GET",
        format!("/workspaces/{id}?token={test_token}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    vec![
        ADMIN.to_string(),
        GARBAGE.to_string(),
        agent_token,
        test_token,
        external_token,
    ]
}

/// The token and the encodings a log line could carry it in.
fn encoded_forms(token: &str) -> Vec<(&'static str, String)> {
    let mut forms = vec![
        ("plaintext", token.to_string()),
        ("base64 of the text", STANDARD.encode(token)),
        (
            "base64 of the text, unpadded",
            STANDARD_NO_PAD.encode(token),
        ),
        ("hex of the text", hex::encode(token)),
        ("HEX of the text", hex::encode_upper(token)),
    ];
    // Minted tokens are base64url of 32 random bytes: those bytes in other encodings too.
    if let Ok(raw) = URL_SAFE_NO_PAD.decode(token) {
        forms.push(("standard base64 of the bytes", STANDARD_NO_PAD.encode(&raw)));
        forms.push(("hex of the bytes", hex::encode(&raw)));
        forms.push(("byte list", format!("{raw:?}")));
    }
    forms
}
