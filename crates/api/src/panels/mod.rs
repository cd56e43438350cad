//! The canvas's side panels: the saved viewport, approvals, budget and token usage, the audit
//! ledger and Langfuse traces. Handlers only; their SQL is in `store`.

pub mod approvals;
pub mod audit;
pub mod budget;
pub mod traces;
pub mod types;
pub mod viewport;

use serde::de::DeserializeOwned;

use crate::ApiError;

/// Parses a body the way gin binds one into a Go struct: a JSON object (unknown keys ignored) or
/// `null` (`None`, every field at its zero value). Anything else, an array included, is 400 with
/// the route's `message`; serde alone would accept an array for a struct.
pub(crate) fn parse_object<T: DeserializeOwned>(
    body: &[u8],
    message: &str,
) -> Result<Option<T>, ApiError> {
    let bad = || ApiError::BadRequest(message.to_string());
    match serde_json::from_slice::<serde_json::Value>(body).map_err(|_| bad())? {
        serde_json::Value::Null => Ok(None),
        object @ serde_json::Value::Object(_) => {
            serde_json::from_value(object).map(Some).map_err(|_| bad())
        }
        _ => Err(bad()),
    }
}
