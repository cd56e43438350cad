//! Secrets at rest (issue 7.6), against the real binary: with `SECRETS_ENCRYPTION_KEY` every value
//! written through create `secrets`, PUT model and PUT provider is AES-256-GCM in
//! `workspace_secrets` (nonce ‖ ciphertext ‖ tag, version 1) and reads back through the API;
//! production without a key refuses to start; the workspace routes never return secret values.

use crate::harness::TestServer;
use reqwest::StatusCode;
use serde_json::json;

const ADMIN: &str = "secrets-admin-token";
/// base64 of 32 bytes.
const KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// AES-GCM framing around the plaintext: 12-byte nonce before, 16-byte tag after.
const NONCE_AND_TAG: usize = 12 + 16;

#[tokio::test]
async fn secret_values_are_encrypted_in_the_column_and_never_listed() {
    let server = TestServer::builder()
        .env("ADMIN_TOKEN", ADMIN)
        .env("SECRETS_ENCRYPTION_KEY", KEY_B64)
        .start()
        .await;
    let api_key = "sk-live-plaintext-7c41e0";
    let webhook = "whsec-plaintext-52aa";
    let model = "anthropic/claude-plaintext-model";
    let provider = "provider-plaintext-9e";
    let create = json!({
        "name": "vault",
        "secrets": {"OPENAI_API_KEY": api_key, "WEBHOOK_SECRET": webhook},
    });
    let (status, created) = server
        .request("POST", "/workspaces", Some(&create), Some(ADMIN))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    for (path, body) in [
        ("model", json!({"model": model})),
        ("provider", json!({"provider": provider})),
    ] {
        let (status, answer) = server
            .request(
                "PUT",
                &format!("/workspaces/{id}/{path}"),
                Some(&body),
                Some(ADMIN),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "PUT {path}: {answer}");
    }

    let pool = server.pool().await.unwrap();
    let rows: Vec<(String, Vec<u8>, i32)> = sqlx::query_as(
        "SELECT key, encrypted_value, encryption_version FROM workspace_secrets
         WHERE workspace_id = $1::uuid ORDER BY key",
    )
    .bind(&id)
    .fetch_all(&pool)
    .await
    .unwrap();
    let expected = [
        ("LLM_PROVIDER", provider),
        ("MODEL_PROVIDER", model),
        ("OPENAI_API_KEY", api_key),
        ("WEBHOOK_SECRET", webhook),
    ];
    assert_eq!(
        rows.iter()
            .map(|(key, ..)| key.as_str())
            .collect::<Vec<_>>(),
        expected.iter().map(|(key, _)| *key).collect::<Vec<_>>()
    );
    for ((key, stored, version), (_, plaintext)) in rows.iter().zip(expected) {
        assert_eq!(*version, 1, "{key}: encryption_version");
        assert_eq!(
            stored.len(),
            plaintext.len() + NONCE_AND_TAG,
            "{key}: nonce(12) ‖ ciphertext ‖ tag(16)"
        );
        assert!(
            !contains(stored, plaintext.as_bytes()),
            "{key}: the plaintext is in the column"
        );
    }
    // Two writes of the same value differ (a fresh nonce each time).
    let (status, _) = server
        .request(
            "PUT",
            &format!("/workspaces/{id}/model"),
            Some(&json!({"model": model})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let again: Vec<u8> = sqlx::query_scalar(
        "SELECT encrypted_value FROM workspace_secrets
         WHERE workspace_id = $1::uuid AND key = 'MODEL_PROVIDER'",
    )
    .bind(&id)
    .fetch_one(&pool)
    .await
    .unwrap();
    let first = &rows.iter().find(|(k, ..)| k == "MODEL_PROVIDER").unwrap().1;
    assert_ne!(&again, first, "the nonce is not reused");

    // They decrypt back through the API.
    let (_, body) = server
        .request("GET", &format!("/workspaces/{id}/model"), None, Some(ADMIN))
        .await;
    assert_eq!(body, json!({"model": model, "source": "workspace_secrets"}));
    let (_, body) = server
        .request(
            "GET",
            &format!("/workspaces/{id}/provider"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(
        body,
        json!({"provider": provider, "source": "workspace_secrets"})
    );

    // The workspace routes never show secret values (nor the model/provider slugs).
    for (path, bearer) in [
        ("/workspaces".to_string(), Some(ADMIN)),
        (format!("/workspaces/{id}"), None),
        (format!("/workspaces/{id}?include_removed=true"), None),
    ] {
        let (status, body) = server.request("GET", &path, None, bearer).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        let text = body.to_string();
        assert!(text.contains("vault"), "GET {path} lists the workspace");
        for secret in [api_key, webhook] {
            assert!(!text.contains(secret), "GET {path} leaks {secret}: {text}");
        }
    }
}

#[tokio::test]
async fn production_without_a_key_refuses_to_start() {
    let error = TestServer::builder()
        .env("MOLECULE_ENV", "production")
        .env("ADMIN_TOKEN", ADMIN)
        .try_start()
        .await
        .expect_err("production without SECRETS_ENCRYPTION_KEY must not serve");
    let text = format!("{error:#}");
    assert!(
        text.contains("exited with") && !text.contains("exit status: 0"),
        "the process exits non-zero: {text}"
    );
    assert!(
        text.contains("SECRETS_ENCRYPTION_KEY is required when MOLECULE_ENV is production"),
        "the refusal names the missing key: {text}"
    );
}

#[tokio::test]
async fn production_with_a_key_starts_and_a_bad_key_does_not() {
    let server = TestServer::builder()
        .env("MOLECULE_ENV", "production")
        .env("ADMIN_TOKEN", ADMIN)
        .env("SECRETS_ENCRYPTION_KEY", KEY_B64)
        .start()
        .await;
    let (status, body) = server.get("/health").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    drop(server);

    let error = TestServer::builder()
        .env("SECRETS_ENCRYPTION_KEY", "too-short")
        .try_start()
        .await
        .expect_err("a key that is neither base64 of 32 bytes nor 32 raw bytes is refused");
    assert!(
        format!("{error:#}").contains("SECRETS_ENCRYPTION_KEY"),
        "{error:#}"
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}
