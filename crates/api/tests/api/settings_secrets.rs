//! Secrets (per workspace and global): the merged listing and its scopes, the agent's decrypted
//! bundle (fail-closed), encryption at rest, restart requests, atomic multi-key writes, the
//! dependents route and the 400/404 answers.

use std::sync::Arc;

use crate::common::{app, insert_workspace, send, send_raw, test_config, test_services};
use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use store::crypto::Crypto;
use uuid::Uuid;

const KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn router(db: &PgPool, crypto: Crypto) -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut services = test_services(db.clone(), test_config(dir.path()));
    services.crypto = Arc::new(crypto);
    (app(api::AppState::new(services)), dir)
}

fn encrypted() -> Crypto {
    Crypto::from_env_value(Some(KEY_B64), true).unwrap()
}

async fn restart_requests(db: &PgPool) -> Vec<Uuid> {
    sqlx::query_scalar(
        "SELECT workspace_id FROM structure_events
         WHERE event_type = 'WORKSPACE_RESTART_REQUESTED' ORDER BY workspace_id",
    )
    .fetch_all(db)
    .await
    .unwrap()
}

fn keys_and_scopes(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["has_value"], true);
            assert!(e["created_at"].as_str().unwrap().ends_with('Z'));
            (
                e["key"].as_str().unwrap().to_string(),
                e["scope"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn workspace_keys_override_globals_and_the_list_names_each_scope(db: PgPool) {
    let (app, _dir) = router(&db, encrypted());
    let id = insert_workspace(&db, "w", "langgraph", None).await;
    let url = format!("/workspaces/{id}/secrets");
    assert_eq!(send(&app, "GET", &url, None).await.json, json!([]));

    for (key, value) in [
        ("SHARED", "global-shared-v"),
        ("ONLY_GLOBAL", "global-only-v"),
    ] {
        let reply = send(
            &app,
            "PUT",
            "/settings/secrets",
            Some(&json!({"key": key, "value": value})),
        )
        .await;
        assert_eq!(
            reply.json,
            json!({"status": "saved", "key": key, "scope": "global"})
        );
    }
    let reply = send(
        &app,
        "POST",
        &url,
        Some(&json!({"key": "SHARED", "value": "own-shared-v"})),
    )
    .await;
    assert_eq!(reply.json, json!({"status": "saved", "key": "SHARED"}));
    let reply = send(
        &app,
        "PUT",
        &url,
        Some(&json!({"key": "B_OWN", "value": "own-b-v"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);

    let list = send(&app, "GET", &url, None).await;
    assert_eq!(
        keys_and_scopes(&list.json),
        [
            ("B_OWN", "workspace"),
            ("SHARED", "workspace"),
            ("ONLY_GLOBAL", "global")
        ]
        .map(|(k, s)| (k.to_string(), s.to_string()))
    );
    let global = send(&app, "GET", "/admin/secrets", None).await;
    assert_eq!(
        keys_and_scopes(&global.json),
        [("ONLY_GLOBAL", "global"), ("SHARED", "global")]
            .map(|(k, s)| (k.to_string(), s.to_string()))
    );
    for text in [&list.text, &global.text] {
        assert!(!text.contains("-v\""), "a listing carries a value: {text}");
    }

    let values = send(&app, "GET", &format!("{url}/values"), None).await;
    assert_eq!(
        values.json,
        json!({"SHARED": "own-shared-v", "ONLY_GLOBAL": "global-only-v", "B_OWN": "own-b-v"})
    );

    // Deleting the workspace's own value lets the global one apply again.
    let reply = send(&app, "DELETE", &format!("{url}/SHARED"), None).await;
    assert_eq!(reply.json, json!({"status": "deleted", "key": "SHARED"}));
    let values = send(&app, "GET", &format!("{url}/values"), None).await;
    assert_eq!(values.json["SHARED"], "global-shared-v");
    // A key that exists only globally is not the workspace's to delete.
    let reply = send(&app, "DELETE", &format!("{url}/ONLY_GLOBAL"), None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json, json!({"error": "secret not found"}));
    let reply = send(&app, "DELETE", "/settings/secrets/ONLY_GLOBAL", None).await;
    assert_eq!(
        reply.json,
        json!({"status": "deleted", "key": "ONLY_GLOBAL", "scope": "global"})
    );
    let reply = send(&app, "DELETE", "/admin/secrets/ONLY_GLOBAL", None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn values_are_sealed_at_rest_and_the_bundle_fails_closed(db: PgPool) {
    let (app, _dir) = router(&db, encrypted());
    let id = insert_workspace(&db, "w", "langgraph", None).await;
    let url = format!("/workspaces/{id}/secrets");
    send(
        &app,
        "PUT",
        &url,
        Some(&json!({"key": "TOKEN", "value": "sealed-plaintext-1"})),
    )
    .await;
    send(
        &app,
        "PUT",
        "/settings/secrets",
        Some(&json!({"key": "G", "value": "sealed-plaintext-2"})),
    )
    .await;
    let rows: Vec<(Vec<u8>, i32)> = sqlx::query_as(
        "SELECT encrypted_value, encryption_version FROM workspace_secrets
         UNION ALL SELECT encrypted_value, encryption_version FROM global_secrets",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    for (bytes, version) in &rows {
        assert_eq!(*version, 1);
        assert!(!String::from_utf8_lossy(bytes).contains("sealed-plaintext"));
    }

    // A value that does not decrypt (a tampered row) refuses the whole bundle, naming the key.
    sqlx::query(
        "UPDATE global_secrets SET encrypted_value = '\\x00112233445566778899aabbccddeeff'",
    )
    .execute(&db)
    .await
    .unwrap();
    let reply = send(&app, "GET", &format!("{url}/values"), None).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        reply.json,
        json!({"error": "one or more secrets failed to decrypt; refusing to return partial bundle",
               "failed_keys": ["global:G"]})
    );
    assert!(!reply.text.contains("sealed-plaintext"));
    // Without the key, sealed values cannot be read either: fail closed, never ciphertext.
    let (keyless, _dir2) = router(&db, Crypto::disabled());
    let reply = send(&keyless, "GET", &format!("{url}/values"), None).await;
    assert_eq!(
        reply.json["failed_keys"],
        json!(["global:G", "workspace:TOKEN"])
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_multi_key_write_is_one_transaction(db: PgPool) {
    let (app, _dir) = router(&db, Crypto::disabled());
    let id = insert_workspace(&db, "w", "langgraph", None).await;
    let url = format!("/workspaces/{id}/secrets");
    let reply = send(
        &app,
        "PUT",
        &url,
        Some(&json!({"secrets": {"A": "1", "B": "2"}})),
    )
    .await;
    assert_eq!(reply.json, json!({"status": "saved", "keys": ["A", "B"]}));
    // One bad value: nothing of the request is written.
    let reply = send(
        &app,
        "PUT",
        &url,
        Some(&json!({"secrets": {"C": "3", "D": ""}})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // A workspace that does not exist: the first key's insert fails, nothing stays.
    let ghost = Uuid::new_v4();
    let reply = send(
        &app,
        "PUT",
        &format!("/workspaces/{ghost}/secrets"),
        Some(&json!({"secrets": {"E": "5", "F": "6"}})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json, json!({"error": "workspace not found"}));
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM workspace_secrets ORDER BY key")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(keys, ["A", "B"]);
    // The global multi-key write too.
    let reply = send(
        &app,
        "POST",
        "/settings/secrets",
        Some(&json!({"secrets": {"G1": "x", "G2": "y"}})),
    )
    .await;
    assert_eq!(
        reply.json,
        json!({"status": "saved", "keys": ["G1", "G2"], "scope": "global"})
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn bad_input_gets_the_originals_400s(db: PgPool) {
    let (app, _dir) = router(&db, Crypto::disabled());
    let id = insert_workspace(&db, "w", "langgraph", None).await;
    let url = format!("/workspaces/{id}/secrets");
    let invalid_body = json!({"error": "invalid request body"});
    for body in [
        &b""[..],
        b"not json",
        br#"{"key":"A"}"#,
        br#"{"value":"v"}"#,
        br#"{"key":"","value":"v"}"#,
        br#"{"key":"A","value":""}"#,
        br#"{"key":"A","value":5}"#,
        br#"{"secrets":{}}"#,
    ] {
        for target in [url.as_str(), "/settings/secrets"] {
            let reply = send_raw(&app, "PUT", target, body.to_vec()).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{target} {body:?}");
            assert_eq!(reply.json, invalid_body, "{target} {body:?}");
        }
    }
    let long_key = "K".repeat(257);
    for (key, value) in [(long_key.as_str(), "v"), ("A/B", "v"), ("A\nB", "v")] {
        let reply = send(
            &app,
            "PUT",
            &url,
            Some(&json!({"key": key, "value": value})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert!(
            reply.json["error"]
                .as_str()
                .unwrap()
                .starts_with("invalid secret key")
        );
    }
    let huge = "v".repeat(64 * 1024 + 1);
    let reply = send(
        &app,
        "PUT",
        &url,
        Some(&json!({"key": "BIG", "value": huge})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(!reply.text.contains("vvvv"), "the value is not echoed");
    for path in [
        "/workspaces/not-a-uuid/secrets",
        "/workspaces/not-a-uuid/secrets/values",
    ] {
        let reply = send(&app, "GET", path, None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(reply.json, json!({"error": "invalid workspace ID"}));
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn changes_request_restarts_of_the_workspaces_they_reach(db: PgPool) {
    let (app, _dir) = router(&db, Crypto::disabled());
    let plain = insert_workspace(&db, "plain", "langgraph", None).await;
    let overriding = insert_workspace(&db, "overriding", "langgraph", None).await;
    let external = insert_workspace(&db, "external", "external", None).await;
    let paused = insert_workspace(&db, "paused", "langgraph", None).await;
    sqlx::query("UPDATE workspaces SET status = 'paused' WHERE id = $1")
        .bind(paused)
        .execute(&db)
        .await
        .unwrap();
    let own = json!({"key": "K", "value": "own"});
    send(
        &app,
        "PUT",
        &format!("/workspaces/{overriding}/secrets"),
        Some(&own),
    )
    .await;
    assert_eq!(restart_requests(&db).await, [overriding]);
    sqlx::query("DELETE FROM structure_events")
        .execute(&db)
        .await
        .unwrap();

    send(
        &app,
        "PUT",
        "/settings/secrets",
        Some(&json!({"key": "K", "value": "g"})),
    )
    .await;
    assert_eq!(
        restart_requests(&db).await,
        [plain],
        "only the inheriting live workspace"
    );
    sqlx::query("DELETE FROM structure_events")
        .execute(&db)
        .await
        .unwrap();
    send(&app, "DELETE", "/settings/secrets/K", None).await;
    assert_eq!(restart_requests(&db).await, [plain]);
    let payloads: Vec<Value> = sqlx::query_scalar("SELECT payload FROM structure_events")
        .fetch_all(&db)
        .await
        .unwrap();
    assert!(
        payloads.iter().all(|p| !p.to_string().contains("\"g\"")),
        "no values in events"
    );
    let _ = external;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn dependents_name_the_workspaces_resolving_a_key_and_their_scope(db: PgPool) {
    let (app, _dir) = router(&db, Crypto::disabled());
    let alpha = insert_workspace(&db, "alpha", "langgraph", None).await;
    let beta = insert_workspace(&db, "beta", "langgraph", None).await;
    let url = |id: Uuid| format!("/workspaces/{id}/secrets/K/dependents");
    let empty = json!({"dependents": [], "workspaces": []});
    assert_eq!(send(&app, "GET", &url(alpha), None).await.json, empty);

    send(
        &app,
        "PUT",
        "/settings/secrets",
        Some(&json!({"key": "K", "value": "g"})),
    )
    .await;
    send(
        &app,
        "PUT",
        &format!("/workspaces/{beta}/secrets"),
        Some(&json!({"key": "K", "value": "b"})),
    )
    .await;
    assert_eq!(
        send(&app, "GET", &url(alpha), None).await.json,
        json!({"dependents": ["alpha"], "workspaces": [{"id": alpha, "name": "alpha", "scope": "global"}]})
    );
    assert_eq!(
        send(&app, "GET", &url(beta), None).await.json,
        json!({"dependents": ["beta"], "workspaces": [{"id": beta, "name": "beta", "scope": "workspace"}]})
    );
    // Deleting the global key affects only the workspaces that inherit it.
    assert_eq!(
        send(&app, "GET", "/settings/secrets/K/dependents", None)
            .await
            .json,
        json!({"dependents": ["alpha"], "workspaces": [{"id": alpha, "name": "alpha", "scope": "global"}]})
    );
}
