//! `GET /workspaces/{id}/audit`: the agents' HMAC-chained ledger, with the chain verified inline
//! when `AUDIT_LEDGER_SALT` is set (`handlers/audit.go` at 624ef4d0).
//!
//! Each row's `hmac` is HMAC-SHA256, keyed with PBKDF2-HMAC-SHA256(salt, `molecule-audit-ledger-v1`,
//! 210 000 rounds), over a canonical JSON of the row; `prev_hmac` links each agent's rows. The
//! agents' runtime writes the rows, so the canonical bytes must be exactly Go's `json.Marshal`.

use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use pbkdf2::hmac::{Hmac, KeyInit, Mac};
use pbkdf2::sha2::Sha256;
use serde::{Deserialize, Serialize};
use store::audit::{AuditEvent, AuditFilter};
use subtle::ConstantTimeEq;

use super::types::{AuditEventView, AuditPage};
use crate::error::ApiResult;
use crate::error::ErrorBody;
use crate::extract::WorkspaceId;
use crate::{ApiError, AppState};

const KEY_SALT: &[u8] = b"molecule-audit-ledger-v1";
const KEY_ROUNDS: u32 = 210_000;
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 500;

/// The ledger's HMAC key, derived from `AUDIT_LEDGER_SALT` on first use and kept for the life of
/// the process (clones share it).
#[derive(Clone)]
pub struct LedgerKey {
    salt: Arc<str>,
    key: Arc<OnceLock<[u8; 32]>>,
}

impl std::fmt::Debug for LedgerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LedgerKey(..)")
    }
}

impl LedgerKey {
    pub fn new(salt: &str) -> Self {
        LedgerKey {
            salt: salt.into(),
            key: Arc::new(OnceLock::new()),
        }
    }

    /// The derived key; the first call runs PBKDF2 off the async workers.
    pub async fn key(&self) -> Result<[u8; 32], tokio::task::JoinError> {
        if let Some(key) = self.key.get() {
            return Ok(*key);
        }
        let salt = self.salt.clone();
        let derived = tokio::task::spawn_blocking(move || derive_key(&salt)).await?;
        Ok(*self.key.get_or_init(|| derived))
    }
}

fn derive_key(salt: &str) -> [u8; 32] {
    pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(salt.as_bytes(), KEY_SALT, KEY_ROUNDS)
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    agent_id: String,
    #[serde(default)]
    session_id: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    limit: String,
    #[serde(default)]
    offset: String,
}

/// One page of the workspace's ledger, oldest first, with the total and the chain's verdict.
#[utoipa::path(get, path = "/workspaces/{id}/audit", tag = "audit",
    params(("id" = uuid::Uuid, Path),
           ("agent_id" = Option<String>, Query), ("session_id" = Option<String>, Query),
           ("from" = Option<String>, Query, description = "RFC 3339, inclusive"),
           ("to" = Option<String>, Query, description = "RFC 3339, exclusive"),
           ("limit" = Option<String>, Query, description = "Default 100, at most 500"),
           ("offset" = Option<String>, Query)),
    responses(
    (status = 200, description = "The page", body = AuditPage),
    (status = 400, description = "Invalid id, from or to", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let filter = AuditFilter {
        agent_id: non_empty(query.agent_id),
        session_id: non_empty(query.session_id),
        from: parse_bound(
            &query.from,
            "from must be RFC 3339 (e.g. 2026-04-17T00:00:00Z)",
        )?,
        to: parse_bound(&query.to, "to must be RFC 3339 (e.g. 2026-04-17T23:59:59Z)")?,
    };
    let limit = match query.limit.parse::<i64>() {
        Ok(n) if n > 0 => n.min(MAX_LIMIT),
        _ => DEFAULT_LIMIT,
    };
    let offset = query.offset.parse::<i64>().ok().filter(|n| *n >= 0);
    let offset = offset.unwrap_or(0);
    let total = store::audit::count(&state.db, workspace_id, &filter)
        .await
        .map_err(ApiError::internal("query failed"))?;
    let events = store::audit::list(&state.db, workspace_id, &filter, limit, offset)
        .await
        .map_err(ApiError::internal("query failed"))?;
    // A later page cannot be verified without the rows before it: no verdict rather than false.
    let chain_valid = match (&state.config.audit_ledger, offset) {
        (Some(ledger), 0) => {
            let key = ledger
                .key()
                .await
                .map_err(ApiError::internal("query failed"))?;
            Some(chain_is_valid(&key, &events))
        }
        _ => None,
    };
    let events =
        (!events.is_empty()).then(|| events.into_iter().map(AuditEventView::from).collect());
    Ok(Json(AuditPage {
        chain_valid,
        events,
        total,
    }))
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

fn parse_bound(text: &str, message: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    if text.is_empty() {
        return Ok(None);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| ApiError::BadRequest(message.to_string()))
}

/// Whether every row's HMAC is right and each agent's rows link up, in the order given: an
/// agent's first row has no `prev_hmac`, each later one the `hmac` of the one before.
pub fn chain_is_valid(key: &[u8; 32], events: &[AuditEvent]) -> bool {
    let mut last_of_agent: std::collections::HashMap<&str, &str> = Default::default();
    for event in events {
        let expected = event_hmac(key, event);
        if !bool::from(expected.as_bytes().ct_eq(event.hmac.as_bytes())) {
            tracing::warn!(event = %event.id, agent = %event.agent_id, "audit: HMAC mismatch");
            return false;
        }
        let previous = last_of_agent.get(event.agent_id.as_str()).copied();
        let linked = match (previous, event.prev_hmac.as_deref()) {
            (None, None) => true,
            (Some(previous), Some(claimed)) => {
                bool::from(previous.as_bytes().ct_eq(claimed.as_bytes()))
            }
            _ => false,
        };
        if !linked {
            tracing::warn!(event = %event.id, agent = %event.agent_id, "audit: chain break");
            return false;
        }
        last_of_agent.insert(&event.agent_id, &event.hmac);
    }
    true
}

/// The fields a row's HMAC covers, in sorted key order (Go marshals its map sorted).
#[derive(Serialize)]
struct Canonical<'a> {
    agent_id: &'a str,
    human_oversight_flag: bool,
    id: &'a str,
    input_hash: Option<&'a str>,
    model_used: Option<&'a str>,
    operation: &'a str,
    output_hash: Option<&'a str>,
    prev_hmac: Option<&'a str>,
    risk_flag: bool,
    session_id: &'a str,
    timestamp: String,
}

/// Lowercase hex HMAC-SHA256 of the row's canonical JSON.
pub fn event_hmac(key: &[u8; 32], event: &AuditEvent) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(canonical_json(event).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The canonical JSON, byte for byte as Go's `json.Marshal` writes it: compact, and `<`, `>`,
/// `&`, U+2028 and U+2029 escaped (serde_json escapes the rest as Go does).
pub fn canonical_json(event: &AuditEvent) -> String {
    let canonical = Canonical {
        agent_id: &event.agent_id,
        human_oversight_flag: event.human_oversight_flag,
        id: &event.id,
        input_hash: event.input_hash.as_deref(),
        model_used: event.model_used.as_deref(),
        operation: &event.operation,
        output_hash: event.output_hash.as_deref(),
        prev_hmac: event.prev_hmac.as_deref(),
        risk_flag: event.risk_flag,
        session_id: &event.session_id,
        timestamp: event.timestamp.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    };
    let json = serde_json::to_string(&canonical).expect("strings and booleans serialise");
    go_html_escape(&json)
}

/// Go's encoder escapes these even inside strings; they only occur inside strings here.
fn go_html_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// PBKDF2 of `test-salt` and the HMAC below, computed independently with Python's
    /// `hashlib.pbkdf2_hmac` and `hmac`.
    const TEST_KEY: &str = "a10054426220cd7e2f46c3c900b2546768c2f86fa423e5ab9c9457b651fb5f4d";
    const TEST_HMAC: &str = "e1a77ff2d337656d4c17c7a1478cda1688a32ad67f803f9b45179fdb4f5fe5fc";

    fn event() -> AuditEvent {
        AuditEvent {
            id: "ev-1".into(),
            timestamp: Utc.with_ymd_and_hms(2026, 4, 17, 10, 11, 12).unwrap()
                + chrono::Duration::milliseconds(345),
            agent_id: "agent-1".into(),
            session_id: "s-1".into(),
            operation: "task_start".into(),
            input_hash: None,
            output_hash: Some("abc\n\"q\"".into()),
            model_used: Some("claude <beta> & é\u{2028}x".into()),
            human_oversight_flag: true,
            risk_flag: false,
            prev_hmac: None,
            hmac: TEST_HMAC.into(),
            workspace_id: uuid::Uuid::nil(),
        }
    }

    fn key() -> [u8; 32] {
        hex::decode(TEST_KEY).unwrap().try_into().unwrap()
    }

    #[test]
    fn the_key_is_pbkdf2_of_the_salt() {
        assert_eq!(hex::encode(derive_key("test-salt")), TEST_KEY);
    }

    #[test]
    fn the_canonical_json_is_gos_bytes() {
        assert_eq!(
            canonical_json(&event()),
            r#"{"agent_id":"agent-1","human_oversight_flag":true,"id":"ev-1","input_hash":null,"model_used":"claude \u003cbeta\u003e \u0026 é\u2028x","operation":"task_start","output_hash":"abc\n\"q\"","prev_hmac":null,"risk_flag":false,"session_id":"s-1","timestamp":"2026-04-17T10:11:12Z"}"#
        );
        assert_eq!(event_hmac(&key(), &event()), TEST_HMAC);
    }

    #[test]
    fn chains_link_per_agent_and_any_change_breaks_them() {
        let key = key();
        let first = event();
        let mut second = event();
        second.id = "ev-2".into();
        second.prev_hmac = Some(first.hmac.clone());
        second.hmac = event_hmac(&key, &second);
        let mut other_agent = event();
        other_agent.id = "ev-3".into();
        other_agent.agent_id = "agent-2".into();
        other_agent.hmac = event_hmac(&key, &other_agent);
        let chain = vec![first.clone(), other_agent.clone(), second.clone()];
        assert!(chain_is_valid(&key, &chain));
        assert!(chain_is_valid(&key, &[]));

        let mut tampered = chain.clone();
        tampered[2].operation = "task_end".into();
        assert!(!chain_is_valid(&key, &tampered), "a changed field");
        assert!(!chain_is_valid(&key, &[second]), "a chain starting mid-way");
        let mut unlinked = other_agent;
        unlinked.prev_hmac = Some(first.hmac.clone());
        unlinked.hmac = event_hmac(&key, &unlinked);
        assert!(
            !chain_is_valid(&key, &[first, unlinked]),
            "a first row with a prev"
        );
    }
}
