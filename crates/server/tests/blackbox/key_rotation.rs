//! `workspace-server rotate-secrets-key` against the real binary: every encrypted value
//! (`workspace_secrets`, `global_secrets`) written under one `SECRETS_ENCRYPTION_KEY` is
//! re-encrypted in place under a new one, plaintext rows included; a server with the new key reads
//! them back; a second run changes nothing; a database left half rotated is finished; a row that
//! neither key opens refuses the whole run and leaves every row as it was.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use store::crypto::Crypto;

use crate::harness::{TestServer, run_command};

const ADMIN: &str = "rotation-admin-token";

fn key(byte: u8) -> String {
    STANDARD.encode([byte; 32])
}

fn crypto(key: &str) -> Crypto {
    Crypto::from_env_value(Some(key), false).unwrap()
}

/// Every encrypted row: (table, key, stored bytes, version).
async fn rows(pool: &PgPool) -> Vec<(String, String, Vec<u8>, i32)> {
    sqlx::query_as(
        "SELECT 'workspace_secrets', key, encrypted_value, encryption_version FROM workspace_secrets
         UNION ALL
         SELECT 'global_secrets', key, encrypted_value, encryption_version FROM global_secrets
         ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

fn rotate(url: &str, old: Option<&str>, new: &str) -> (Option<i32>, String) {
    let mut env = vec![("DATABASE_URL", url), ("SECRETS_ENCRYPTION_KEY", new)];
    if let Some(old) = old {
        env.push(("SECRETS_ENCRYPTION_KEY_OLD", old));
    }
    let (status, output) = run_command(&env, &["rotate-secrets-key"]).unwrap();
    (status.code(), output)
}

#[tokio::test]
async fn every_secret_is_re_encrypted_under_the_new_key_once() {
    let (old, new) = (key(1), key(2));
    let mut first = TestServer::builder()
        .env("ADMIN_TOKEN", ADMIN)
        .env("SECRETS_ENCRYPTION_KEY", &old)
        .start()
        .await;
    let create = json!({"name": "vault", "secrets": {"OPENAI_API_KEY": "sk-rotate-1"}});
    let (status, created) = first
        .request("POST", "/workspaces", Some(&create), Some(ADMIN))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let model = json!({"model": "anthropic/rotated-model"});
    let (status, answer) = first
        .request(
            "PUT",
            &format!("/workspaces/{id}/model"),
            Some(&model),
            Some(ADMIN),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let global = json!({"key": "GLOBAL_TOKEN", "value": "global-rotate-2"});
    let (status, answer) = first
        .request("PUT", "/settings/secrets", Some(&global), Some(ADMIN))
        .await;
    assert!(status.is_success(), "{answer}");
    let pool = first.pool().await.unwrap();
    // A value written before any key was set: plaintext, version 0.
    sqlx::query(
        "INSERT INTO global_secrets (key, encrypted_value, encryption_version)
         VALUES ('LEGACY_PLAIN', 'legacy-plain-3', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    first.terminate();
    let url = first.database_url.clone().expect("a fresh database");
    let before = rows(&pool).await;
    assert_eq!(before.len(), 4, "{before:?}");

    let (code, output) = rotate(&url, Some(&old), &new);
    assert_eq!(code, Some(0), "{output}");
    assert!(
        output.contains("3 re-encrypted, 1 plaintext encrypted, 0 already under the new key"),
        "{output}"
    );
    let after = rows(&pool).await;
    let (old_cipher, new_cipher) = (crypto(&old), crypto(&new));
    let mut plaintexts = Vec::new();
    for (table, name, value, version) in &after {
        assert_eq!(*version, 1, "{table}.{name} is encrypted");
        assert!(
            old_cipher.decrypt(value, 1).is_err(),
            "{table}.{name} no longer opens with the old key"
        );
        let plain = new_cipher
            .decrypt(value, 1)
            .expect("opens with the new key");
        plaintexts.push(String::from_utf8(plain).unwrap());
    }
    plaintexts.sort();
    assert_eq!(
        plaintexts,
        [
            "anthropic/rotated-model",
            "global-rotate-2",
            "legacy-plain-3",
            "sk-rotate-1"
        ]
    );

    // A server with the new key reads them through the API.
    let second = TestServer::builder()
        .database_url(&url)
        .env("ADMIN_TOKEN", ADMIN)
        .env("SECRETS_ENCRYPTION_KEY", &new)
        .start()
        .await;
    let (status, answer) = second
        .request("GET", &format!("/workspaces/{id}/model"), None, Some(ADMIN))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["model"], "anthropic/rotated-model", "{answer}");

    // Idempotent: a second run changes nothing.
    let (code, output) = rotate(&url, Some(&old), &new);
    assert_eq!(code, Some(0), "{output}");
    assert!(
        output.contains("0 re-encrypted, 0 plaintext encrypted, 4 already under the new key"),
        "{output}"
    );
    assert_eq!(rows(&pool).await, after);

    // Resumable: a row still under the old key (a half-finished rotation) is finished.
    let (sealed, _) = old_cipher.encrypt(b"late-write-4").unwrap();
    sqlx::query(
        "INSERT INTO global_secrets (key, encrypted_value, encryption_version)
         VALUES ('LATE_WRITE', $1, 1)",
    )
    .bind(&sealed)
    .execute(&pool)
    .await
    .unwrap();
    let (code, output) = rotate(&url, Some(&old), &new);
    assert_eq!(code, Some(0), "{output}");
    assert!(
        output.contains("1 re-encrypted, 0 plaintext encrypted, 4 already under the new key"),
        "{output}"
    );

    // A row neither key opens: refused (exit 2, naming the row), and nothing is changed.
    let stranger = crypto(&key(3));
    let (sealed, _) = stranger.encrypt(b"unknown-key-5").unwrap();
    sqlx::query(
        "INSERT INTO global_secrets (key, encrypted_value, encryption_version)
         VALUES ('ZZ_STRANGER', $1, 1)",
    )
    .bind(&sealed)
    .execute(&pool)
    .await
    .unwrap();
    let (before_refusal, newest) = (rows(&pool).await, key(4));
    let (code, output) = rotate(&url, Some(&new), &newest);
    assert_eq!(code, Some(2), "{output}");
    assert!(
        output.contains("ZZ_STRANGER") && output.contains("nothing was changed"),
        "{output}"
    );
    assert_eq!(rows(&pool).await, before_refusal);

    // Without the new key the command refuses to start.
    let (status, output) = run_command(&[("DATABASE_URL", &url)], &["rotate-secrets-key"]).unwrap();
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(output.contains("SECRETS_ENCRYPTION_KEY"), "{output}");
}
