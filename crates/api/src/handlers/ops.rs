use axum::Json;
use serde_json::{Value, json};

/// `GET /health`: liveness only; checks no dependency.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
