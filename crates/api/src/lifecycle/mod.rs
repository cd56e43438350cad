//! The workspace lifecycle routes (`handlers/workspace_restart.go`, `workspace_bootstrap.go` at
//! 624ef4d0): restart, pause (cascading), resume, hibernate, the console output and the
//! bootstrap watcher's failure report. The work itself is `crate::provisioner::flow`'s.

pub mod bootstrap;
pub mod console;
pub mod hibernate;
pub mod pause;
pub mod restart;
mod types;

pub use types::*;

use axum::http::StatusCode;

use crate::ApiError;
use crate::error::ErrorBody;

/// The 500 of a failed row lookup (the original's).
const LOOKUP_FAILED: &str = "lookup failed";

/// The first value of the query parameter `name` (gin's `c.Query`): a repeated or malformed
/// parameter is never a rejection (axum's `Query` answers those in plain text).
fn query_value<'a>(raw: Option<&'a str>, name: &str) -> Option<&'a str> {
    raw?.split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// `{"error": message}` with `status`.
fn plain(status: StatusCode, message: &str) -> ApiError {
    ApiError::with_body(
        status,
        &ErrorBody {
            code: None,
            error: message.to_string(),
        },
    )
}

/// 503 `provisioner not available` (`workspace_restart.go:120-123`).
fn no_provisioner() -> ApiError {
    plain(StatusCode::SERVICE_UNAVAILABLE, "provisioner not available")
}

/// 409 `parent workspace "<name>" is paused — resume it first`.
fn parent_paused(name: &str) -> ApiError {
    ApiError::Conflict(format!(
        "parent workspace \"{name}\" is paused — resume it first"
    ))
}

/// The 409 of a paused ancestor, if `id` has one.
async fn check_ancestors(state: &crate::AppState, id: uuid::Uuid) -> Result<(), ApiError> {
    use crate::error::StoreContext;
    match store::provisioning::paused_ancestor(&state.db, id)
        .await
        .context(LOOKUP_FAILED)?
    {
        Some(name) => Err(parent_paused(&name)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::query_value;

    #[test]
    fn the_first_value_wins_and_repeats_are_no_error() {
        assert_eq!(
            query_value(Some("reset=true&reset=null"), "reset"),
            Some("true")
        );
        assert_eq!(query_value(Some("force"), "force"), Some(""));
        assert_eq!(query_value(Some("x=1"), "force"), None);
        assert_eq!(query_value(None, "force"), None);
    }
}
