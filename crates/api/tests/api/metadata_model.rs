//! Model and provider: encrypted round trips, compatibility with values the Go
//! original encrypted, the restart-request event, and the error statuses.

use std::sync::Arc;

use crate::common::{app, send, send_raw, test_config, test_services};
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use sqlx::PgPool;
use store::crypto::Crypto;
use uuid::Uuid;

const KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // base64 of 32 ASCII bytes

async fn workspace(db: &PgPool) -> Uuid {
    sqlx::query_scalar("INSERT INTO workspaces (name) VALUES ('m') RETURNING id")
        .fetch_one(db)
        .await
        .unwrap()
}

fn router(db: &PgPool, crypto: Crypto) -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut services = test_services(db.clone(), test_config(dir.path()));
    services.crypto = Arc::new(crypto);
    let state = api::AppState::new(services);
    (app(state), dir)
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn model_and_provider_round_trip_encrypted(db: PgPool) {
    let id = workspace(&db).await;
    let crypto = Crypto::from_env_value(Some(KEY_B64), true).unwrap();
    let (app, _dir) = router(&db, crypto);
    for (field, value) in [("model", "minimax/MiniMax-M2.7"), ("provider", "minimax")] {
        let url = format!("/workspaces/{id}/{field}");
        let reply = send(&app, "GET", &url, None).await;
        assert_eq!(reply.json, json!({field: "", "source": "default"}));
        let reply = send(&app, "PUT", &url, Some(&json!({field: value}))).await;
        assert_eq!(reply.json, json!({"status": "saved", field: value}));
        let reply = send(&app, "GET", &url, None).await;
        assert_eq!(
            reply.json,
            json!({field: value, "source": "workspace_secrets"})
        );
        let reply = send(&app, "PUT", &url, Some(&json!({field: ""}))).await;
        assert_eq!(reply.json, json!({"status": "cleared"}));
        assert_eq!(
            send(&app, "GET", &url, None).await.json["source"],
            "default"
        );
        send(&app, "PUT", &url, Some(&json!({field: value}))).await;
        let reply = send(&app, "PUT", &url, Some(&json!({}))).await;
        assert_eq!(
            reply.json,
            json!({"status": "cleared"}),
            "a missing field clears too"
        );
    }
    send(
        &app,
        "PUT",
        &format!("/workspaces/{id}/model"),
        Some(&json!({"model": "anthropic/claude"})),
    )
    .await;
    let (stored, version): (Vec<u8>, i32) = sqlx::query_as(
        "SELECT encrypted_value, encryption_version FROM workspace_secrets WHERE key = 'MODEL_PROVIDER'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(version, 1);
    assert_eq!(
        stored.len(),
        12 + "anthropic/claude".len() + 16,
        "nonce ‖ ciphertext ‖ tag"
    );
    // Decrypts with a plain AES-256-GCM of the same key, as the Go original would.
    let key = STANDARD.decode(KEY_B64).unwrap();
    let cipher = Aes256Gcm::new_from_slice(&key).unwrap();
    let plain = cipher
        .decrypt(Nonce::from_slice(&stored[..12]), &stored[12..])
        .unwrap();
    assert_eq!(plain, b"anthropic/claude");

    let restarts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM structure_events WHERE event_type = 'WORKSPACE_RESTART_REQUESTED' AND workspace_id = $1",
    )
    .bind(id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(restarts, 9, "every PUT asks for a restart");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn values_written_by_the_go_original_read_back(db: PgPool) {
    let id = workspace(&db).await;
    // What crypto/aes.go stores: gcm.Seal(nonce, nonce, plaintext, nil), version 1.
    let key = STANDARD.decode(KEY_B64).unwrap();
    let cipher = Aes256Gcm::new_from_slice(&key).unwrap();
    let nonce = [7u8; 12];
    let mut blob = nonce.to_vec();
    blob.extend(
        cipher
            .encrypt(Nonce::from_slice(&nonce), b"openai/gpt-5".as_ref())
            .unwrap(),
    );
    sqlx::query(
        "INSERT INTO workspace_secrets (workspace_id, key, encrypted_value, encryption_version)
         VALUES ($1, 'MODEL_PROVIDER', $2, 1), ($1, 'LLM_PROVIDER', 'openrouter', 0)",
    )
    .bind(id)
    .bind(&blob)
    .execute(&db)
    .await
    .unwrap();
    let (app, _dir) = router(&db, Crypto::from_env_value(Some(KEY_B64), false).unwrap());
    let reply = send(&app, "GET", &format!("/workspaces/{id}/model"), None).await;
    assert_eq!(
        reply.json,
        json!({"model": "openai/gpt-5", "source": "workspace_secrets"})
    );
    // Version 0 rows are plaintext, even with a key.
    let reply = send(&app, "GET", &format!("/workspaces/{id}/provider"), None).await;
    assert_eq!(
        reply.json,
        json!({"provider": "openrouter", "source": "workspace_secrets"})
    );

    // Without the key an encrypted row cannot be read: a generic 500, nothing leaked.
    let (keyless, _dir) = router(&db, Crypto::disabled());
    let reply = send(&keyless, "GET", &format!("/workspaces/{id}/model"), None).await;
    assert_eq!(
        (reply.status, reply.json),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "failed to decrypt"})
        )
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn model_routes_refuse_bad_ids_bodies_and_unknown_workspaces(db: PgPool) {
    let (app, _dir) = router(&db, Crypto::disabled());
    let reply = send(&app, "GET", "/workspaces/nope/model", None).await;
    assert_eq!(
        (reply.status, reply.json),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid workspace ID"})
        )
    );
    let reply = send(
        &app,
        "PUT",
        "/workspaces/nope/provider",
        Some(&json!({"provider": "x"})),
    )
    .await;
    assert_eq!(reply.json, json!({"error": "invalid workspace ID"}));
    let id = workspace(&db).await;
    for body in [
        b"".to_vec(),
        b"{".to_vec(),
        br#"{"model":5}"#.to_vec(),
        b"[]".to_vec(),
    ] {
        let reply = send_raw(&app, "PUT", &format!("/workspaces/{id}/model"), body).await;
        assert_eq!(
            (reply.status, reply.json),
            (
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid request body"})
            )
        );
    }
    let missing = Uuid::new_v4();
    let reply = send(
        &app,
        "PUT",
        &format!("/workspaces/{missing}/model"),
        Some(&json!({"model": "a/b"})),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json),
        (
            StatusCode::NOT_FOUND,
            json!({"error": "workspace not found"})
        )
    );
}
