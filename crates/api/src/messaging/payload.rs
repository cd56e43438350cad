//! JSON-RPC normalisation of what callers send to `/a2a` (the original's `normalizeA2APayload`,
//! `handlers/a2a_proxy.go:608-692` at 624ef4d0): the canvas sends no envelope, older agents send
//! `content` instead of `parts`; the agent always receives a v0.3 JSON-RPC request.

use axum::http::StatusCode;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::ApiError;

/// A 400 with advice on the fix (`hint` where the request was malformed; an invalid workspace ID
/// answers without one).
#[derive(Debug, Serialize, ToSchema)]
pub struct HintBody {
    pub error: String,
    #[schema(required = false)]
    pub hint: String,
}

/// The request as forwarded, and its JSON-RPC method (`""` when none).
#[derive(Debug, Clone)]
pub struct Normalised {
    pub body: Value,
    /// `body` as JSON text, written once: what is sent to the agent and logged.
    pub text: Box<RawValue>,
    pub method: String,
}

impl Normalised {
    pub fn new(body: Value, method: String) -> Self {
        let text = crate::json::raw(&body);
        Self { body, text, method }
    }

    /// `params.message.messageId`: a retried request is queued once.
    pub fn message_id(&self) -> Option<&str> {
        self.body.pointer("/params/message/messageId")?.as_str()
    }

    /// `params.expires_in_seconds`, when it is a positive integer.
    pub fn expires_in_seconds(&self) -> Option<i64> {
        let seconds = self.body.pointer("/params/expires_in_seconds")?.as_i64()?;
        (seconds > 0).then_some(seconds)
    }
}

/// Wraps, completes and checks a caller's request.
pub fn normalise(raw: &[u8]) -> Result<Normalised, ApiError> {
    let invalid = || ApiError::BadRequest("invalid JSON".to_string());
    let mut object = match serde_json::from_slice::<Value>(raw).map_err(|_| invalid())? {
        Value::Object(object) => object,
        Value::Null => Map::new(),
        _ => return Err(invalid()),
    };
    if !object.contains_key("jsonrpc") {
        let method = object.remove("method").unwrap_or(Value::Null);
        let params = object.remove("params").unwrap_or(Value::Null);
        object = Map::new();
        object.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
        object.insert("jsonrpc".into(), json!("2.0"));
        object.insert("method".into(), method);
        object.insert("params".into(), params);
    }
    if let Some(Value::Object(message)) = object
        .get_mut("params")
        .and_then(|params| params.get_mut("message"))
    {
        complete_message(message)?;
    }
    let method = object
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok(Normalised::new(Value::Object(object), method))
}

/// A `messageId` when missing; `content` (v0.2) turned into `parts` (v0.3).
fn complete_message(message: &mut Map<String, Value>) -> Result<(), ApiError> {
    if !message.contains_key("messageId") {
        message.insert("messageId".into(), json!(uuid::Uuid::new_v4().to_string()));
    }
    if message.contains_key("parts") {
        return Ok(());
    }
    let parts = match message.remove("content") {
        Some(Value::String(text)) => json!([{ "kind": "text", "text": text }]),
        Some(Value::Array(parts)) => Value::Array(parts),
        Some(_) => {
            return Err(hinted(
                "invalid params.message.content type",
                "content must be a string (v0.2 compat) or omitted in favour of parts (v0.3)",
            ));
        }
        None => {
            return Err(hinted(
                "params.message must contain either 'parts' (v0.3) or 'content' (v0.2 compat)",
                r#"v0.3 example: {"parts":[{"kind":"text","text":"..."}]}"#,
            ));
        }
    };
    message.insert("parts".into(), parts);
    Ok(())
}

fn hinted(error: &str, hint: &str) -> ApiError {
    let body = HintBody {
        error: error.to_string(),
        hint: hint.to_string(),
    };
    ApiError::with_body(StatusCode::BAD_REQUEST, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(raw: &str) -> String {
        match normalise(raw.as_bytes()).unwrap_err() {
            ApiError::BadRequest(message) => message,
            ApiError::WithBody { body, .. } => body["error"].as_str().unwrap().to_string(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_canvas_request_is_wrapped_and_completed() {
        let raw = r#"{"method":"message/send","params":{"message":{"role":"user","content":"hi"}},"metadata":{"x":1}}"#;
        let normalised = normalise(raw.as_bytes()).unwrap();
        assert_eq!(normalised.method, "message/send");
        let body = &normalised.body;
        assert_eq!(body["jsonrpc"], "2.0");
        assert!(body["id"].as_str().is_some());
        assert!(
            body.get("metadata").is_none(),
            "other top-level keys are dropped"
        );
        let message = &body["params"]["message"];
        assert_eq!(message["parts"], json!([{"kind": "text", "text": "hi"}]));
        assert!(message.get("content").is_none());
        assert!(normalised.message_id().is_some());
    }

    #[test]
    fn an_envelope_is_kept_as_sent() {
        let raw =
            r#"{"jsonrpc":"2.0","id":7,"method":"tasks/get","params":{"id":"t"},"extra":true}"#;
        let normalised = normalise(raw.as_bytes()).unwrap();
        assert_eq!(normalised.body["id"], 7);
        assert_eq!(normalised.body["extra"], true);
        assert_eq!(normalised.method, "tasks/get");
    }

    #[test]
    fn bad_shapes_answer_the_original_messages() {
        assert_eq!(error_of("[1]"), "invalid JSON");
        assert_eq!(error_of("nope"), "invalid JSON");
        assert_eq!(
            error_of(r#"{"method":"m","params":{"message":{"content":null}}}"#),
            "invalid params.message.content type"
        );
        assert!(
            error_of(r#"{"method":"m","params":{"message":{}}}"#)
                .starts_with("params.message must contain")
        );
    }

    #[test]
    fn null_is_an_empty_request_and_has_no_method() {
        let normalised = normalise(b"null").unwrap();
        assert_eq!(normalised.method, "");
        assert_eq!(normalised.body["params"], Value::Null);
    }
}
