//! Secret values and the tokens of the settings routes never appear in the logs: the real binary
//! at `RUST_LOG=debug` writes, lists, reads back, refuses and deletes secrets of both scopes, and
//! mints, uses and revokes workspace and org tokens and rotates an external workspace's token;
//! its captured output must contain none of the values or tokens, in any common encoding.

use crate::harness::TestServer;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

const ADMIN: &str = "secrets-log-admin-token-81c2";
const KEY: &str = "jVs8GWm7tzu8mSRJhBQAI9w4vqpYdJLcAwu1+VidMP4=";

#[tokio::test]
async fn secret_values_and_tokens_stay_out_of_debug_logs() {
    for format in ["json", "text"] {
        let mut server = TestServer::builder()
            .env("ADMIN_TOKEN", ADMIN)
            .env("SECRETS_ENCRYPTION_KEY", KEY)
            .env("RUST_LOG", "debug")
            .env("LOG_FORMAT", format)
            .start()
            .await;
        let written = exercise(&server).await;
        server.terminate();
        let logs = server.logs();
        assert!(
            logs.contains("/secrets") && logs.contains("/org/tokens"),
            "the requests are not in the {format} log"
        );
        let leaks: Vec<String> = written
            .iter()
            .flat_map(|value| forms(value).into_iter().map(move |f| (value, f)))
            .filter(|(_, (_, text))| logs.contains(text.as_str()))
            .map(|(value, (form, _))| format!("{form} of {}…", &value[..6]))
            .collect();
        assert!(leaks.is_empty(), "secrets in the {format} log: {leaks:?}");
    }
}

async fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    body: Option<Value>,
    bearer: &str,
) -> Value {
    let (status, answer) = server
        .request(method, path, body.as_ref(), Some(bearer))
        .await;
    assert!(status.is_success(), "{method} {path}: {status} {answer}");
    answer
}

/// Every secret value and token that crossed the wire.
async fn exercise(server: &TestServer) -> Vec<String> {
    let values: Vec<String> = (0..6)
        .map(|n| format!("secret-value-{n}-{}", uuid::Uuid::new_v4().simple()))
        .collect();
    let created = call(
        server,
        "POST",
        "/workspaces",
        Some(json!({"name": "logged", "secrets": {"CREATE_TIME": values[0]}})),
        ADMIN,
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    let secrets = format!("/workspaces/{id}/secrets");
    call(
        server,
        "PUT",
        &secrets,
        Some(json!({"key": "ONE", "value": values[1]})),
        ADMIN,
    )
    .await;
    let many = json!({"secrets": {"TWO": values[2], "THREE": values[3]}});
    call(server, "POST", &secrets, Some(many), ADMIN).await;
    let global = json!({"key": "GLOBAL", "value": values[4]});
    call(server, "PUT", "/settings/secrets", Some(global), ADMIN).await;
    call(server, "GET", &secrets, None, ADMIN).await;
    call(server, "GET", "/admin/secrets", None, ADMIN).await;
    // Refused writes carrying a value: the value is neither answered nor logged.
    for body in [
        json!({"key": "BAD/KEY", "value": values[5]}),
        json!({"key": "BIG", "value": format!("{}{}", values[5], "x".repeat(70_000))}),
        json!({"secrets": {"OK": values[5], "EMPTY": ""}}),
    ] {
        let (status, answer) = server
            .request("PUT", &secrets, Some(&body), Some(ADMIN))
            .await;
        assert_eq!(status, 400, "{answer}");
        assert!(!answer.to_string().contains(&values[5]));
    }

    let minted = call(
        server,
        "POST",
        &format!("/workspaces/{id}/tokens"),
        None,
        ADMIN,
    )
    .await;
    let workspace_token = minted["auth_token"].as_str().unwrap().to_string();
    let bundle = call(
        server,
        "GET",
        &format!("{secrets}/values"),
        None,
        &workspace_token,
    )
    .await;
    assert_eq!(bundle["ONE"], values[1]);
    call(
        server,
        "DELETE",
        &format!("{secrets}/ONE"),
        None,
        &workspace_token,
    )
    .await;
    call(server, "DELETE", "/settings/secrets/GLOBAL", None, ADMIN).await;

    let org = call(
        server,
        "POST",
        "/org/tokens",
        Some(json!({"name": "ci"})),
        ADMIN,
    )
    .await;
    let org_token = org["auth_token"].as_str().unwrap().to_string();
    call(server, "GET", "/org/tokens", None, &org_token).await;
    let org_id = org["id"].as_str().unwrap();
    call(
        server,
        "DELETE",
        &format!("/org/tokens/{org_id}"),
        None,
        ADMIN,
    )
    .await;

    let external = json!({"name": "outside", "runtime": "external"});
    let created = call(server, "POST", "/workspaces", Some(external), ADMIN).await;
    let external_id = created["id"].as_str().unwrap();
    let first = created["connection"]["auth_token"]
        .as_str()
        .unwrap()
        .to_string();
    let rotate = format!("/workspaces/{external_id}/external/rotate");
    let rotated = call(server, "POST", &rotate, Some(json!({})), &first).await;
    let second = rotated["connection"]["auth_token"]
        .as_str()
        .unwrap()
        .to_string();
    // Revoked tokens, refused: still not logged.
    for token in [&first, &org_token] {
        let (status, _) = server
            .request(
                "GET",
                &format!("/workspaces/{external_id}/external/connection"),
                None,
                Some(token),
            )
            .await;
        assert_eq!(status, 401);
    }

    let mut written = values;
    written.extend([workspace_token, org_token, first, second, ADMIN.to_string()]);
    written
}

/// The value and the encodings a log line could carry it in.
fn forms(value: &str) -> Vec<(&'static str, String)> {
    let bytes = value.as_bytes();
    vec![
        ("plaintext", value.to_string()),
        ("base64", STANDARD.encode(bytes)),
        ("base64url", URL_SAFE_NO_PAD.encode(bytes)),
        ("hex", bytes.iter().map(|b| format!("{b:02x}")).collect()),
        ("JSON-escaped", serde_json::to_string(value).unwrap()),
    ]
}
