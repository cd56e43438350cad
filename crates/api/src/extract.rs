//! Typed path extractors shared by the handlers.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use uuid::Uuid;

use crate::ApiError;

/// The `{id}` of a `/workspaces/{id}/…` (or `/admin/workspaces/{id}/…`) path, parsed as a UUID.
/// Anything else answers 400 `invalid workspace ID`, before the handler runs, as the original's
/// handlers did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkspaceId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for WorkspaceId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let invalid = || ApiError::BadRequest("invalid workspace ID".to_string());
        // The first path parameter is the workspace's id on every route that takes this extractor;
        // other parameters (a key, a file path) are read by the handler with `Path<(…)>`.
        let Path(params): Path<Vec<(String, String)>> = Path::from_request_parts(parts, state)
            .await
            .map_err(|_| invalid())?;
        let raw = params
            .iter()
            .find(|(name, _)| name == "id" || name == "workspaceId")
            .map(|(_, value)| value.as_str())
            .ok_or_else(invalid)?;
        Uuid::parse_str(raw).map(WorkspaceId).map_err(|_| invalid())
    }
}

impl std::ops::Deref for WorkspaceId {
    type Target = Uuid;

    fn deref(&self) -> &Uuid {
        &self.0
    }
}
