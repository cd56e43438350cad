use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;
use utoipa::ToSchema;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every error answer: `{"error": "…"}`, plus `code` where the original has one.
/// Some answers add fields of their own (`id`/`hint` on 410, `retry_after` on 429); those have
/// types of their own where a handler documents them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub error: String,
}

/// `{"status": "…"}`: the answer of an action with nothing else to say.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusBody {
    pub status: &'static str,
}

/// The one error type of the HTTP layer. Every variant maps to a status here and nowhere else.
/// Bodies are `{"error":"…"}` (plus `code` where the contract has one); internal causes are
/// logged with their source chain by the error-logging middleware and never sent to the client.
#[derive(Debug, Error)]
pub enum ApiError {
    /// 400 with a message for the client.
    #[error("{0}")]
    BadRequest(String),
    /// 401 with a message for the client.
    #[error("{0}")]
    Unauthorized(String),
    /// 404 with a message for the client.
    #[error("{0}")]
    NotFound(String),
    /// 409 with a message for the client.
    #[error("{0}")]
    Conflict(String),
    /// 413 with a message for the client.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Any status with a JSON body of its own (410 `workspace removed`, 409 `confirmation_required`, …).
    #[error("{status}: {body}")]
    WithBody { status: StatusCode, body: Value },
    /// 503 `{"error","code"}`: a dependency is down; the client may retry. The source, if any,
    /// is logged.
    #[error("{message}")]
    Unavailable {
        message: String,
        code: &'static str,
        #[source]
        source: Option<BoxError>,
    },
    /// A remote fault (502 naming the failed step, 504 on timeout, 409 when the host is unavailable).
    #[error("{message}")]
    Remote {
        status: StatusCode,
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// 500 with a generic message; the source is logged, never sent.
    #[error("{context}")]
    Internal {
        context: String,
        #[source]
        source: BoxError,
    },
}

impl ApiError {
    /// Maps any error into a 500 with a generic `context` for the client (a store error as
    /// [`ApiError::from_store`] does), keeping the source for the log: `.map_err(ApiError::internal("failed to create workspace"))`.
    pub fn internal<E>(context: &str) -> impl FnOnce(E) -> ApiError + '_
    where
        E: Into<BoxError>,
    {
        move |source| {
            // A store error keeps its typed mapping (503 when the database is down, 400 for
            // text PostgreSQL refuses, 409, 404), whichever way the handler wrapped it.
            let source: BoxError = source.into();
            let source = match source.downcast::<store::StoreError>() {
                Ok(error) => return ApiError::from_store(*error, context),
                Err(source) => source,
            };
            match source.downcast::<sqlx::Error>() {
                Ok(error) => ApiError::from_store((*error).into(), context),
                Err(source) => ApiError::Internal {
                    context: context.to_string(),
                    source,
                },
            }
        }
    }

    /// An answer of `status` with a typed body of its own (410 `workspace removed`, 409
    /// `confirmation_required`, …).
    pub fn with_body(status: StatusCode, body: &impl Serialize) -> ApiError {
        match serde_json::to_value(body) {
            Ok(body) => ApiError::WithBody { status, body },
            Err(error) => ApiError::internal("failed to encode the answer")(error),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::WithBody { status, .. } => *status,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Remote { status, .. } => *status,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The 503 answer of a database outage, from any guard or handler (the original's
/// `middleware/wsauth_middleware.go` answers it when the token lookup fails).
pub const DATASTORE_UNAVAILABLE: &str = "platform datastore unavailable — retry shortly";
/// The 500 message of a store failure whose call gives no context of its own.
const STORE_FAILED: &str = "internal error";

/// Unique indexes a client can collide with, by name, and the 409 message of each. The
/// workspaces' sibling-name index is reported by `store` as its own variant.
const UNIQUE_CONFLICTS: &[(&str, &str)] = &[];

/// Foreign keys a client can name a missing row through, by name: the status and message.
/// Anything else referencing a missing row is a workspace that does not exist (every foreign key
/// of the schema but `workspaces.parent_id`, which `store` reports as its own variant, points at
/// `workspaces(id)`).
const MISSING_REFERENCES: &[(&str, StatusCode, &str)] = &[];

impl ApiError {
    /// 404 `workspace not found`.
    pub fn workspace_not_found() -> ApiError {
        ApiError::NotFound("workspace not found".to_string())
    }

    /// The 503 of a database outage, keeping the driver's error for the log.
    pub fn datastore_unavailable(source: impl Into<BoxError>) -> ApiError {
        ApiError::Unavailable {
            message: DATASTORE_UNAVAILABLE.to_string(),
            code: "platform_unavailable",
            source: Some(source.into()),
        }
    }

    /// Maps a store error to its answer; an unexpected one is a 500 saying `context`.
    pub fn from_store(error: store::StoreError, context: impl Into<String>) -> ApiError {
        use store::StoreError;
        // A read shared with other callers carries its error by reference (`root`).
        match error.root() {
            StoreError::DuplicateWorkspaceName => ApiError::Conflict(error.to_string()),
            StoreError::ParentNotFound => ApiError::BadRequest(error.to_string()),
            StoreError::NotFound => ApiError::workspace_not_found(),
            // The database went away (restart, failover, full pool): the client may retry.
            _ if error.is_unavailable() => ApiError::datastore_unavailable(error),
            // A NUL character cannot be stored in a text column: bad input, not a server fault.
            _ if error.is_invalid_text() => {
                ApiError::BadRequest("text must not contain NUL characters".to_string())
            }
            _ if error.is_unique_violation() => {
                let index = error.constraint().unwrap_or_default();
                let message = UNIQUE_CONFLICTS
                    .iter()
                    .find(|(name, _)| *name == index)
                    .map_or("already exists", |(_, message)| message);
                ApiError::Conflict(message.to_string())
            }
            _ if error.is_missing_reference() => {
                let key = error.constraint().unwrap_or_default();
                match MISSING_REFERENCES.iter().find(|(name, ..)| *name == key) {
                    Some((_, status, message)) => ApiError::with_body(
                        *status,
                        &ErrorBody {
                            code: None,
                            error: message.to_string(),
                        },
                    ),
                    None => ApiError::workspace_not_found(),
                }
            }
            _ => ApiError::Internal {
                context: context.into(),
                source: error.into(),
            },
        }
    }
}

impl From<store::StoreError> for ApiError {
    fn from(error: store::StoreError) -> Self {
        ApiError::from_store(error, STORE_FAILED)
    }
}

impl From<sqlx::Error> for ApiError {
    /// Opening or committing a transaction.
    fn from(error: sqlx::Error) -> Self {
        ApiError::from(store::StoreError::from(error))
    }
}

/// `?` on a store call whose unexpected failure answers a 500 with a message of its own (the
/// original's, e.g. `failed to create workspace`); typed store errors map as in
/// [`ApiError::from_store`].
pub trait StoreContext<T> {
    fn context(self, context: &str) -> ApiResult<T>;
}

impl<T> StoreContext<T> for Result<T, store::StoreError> {
    fn context(self, context: &str) -> ApiResult<T> {
        self.map_err(|error| ApiError::from_store(error, context))
    }
}

impl<T> StoreContext<T> for Result<T, sqlx::Error> {
    fn context(self, context: &str) -> ApiResult<T> {
        self.map_err(|error| ApiError::from_store(error.into(), context))
    }
}

/// Marker put into the response extensions so the logging middleware can log the full chain of
/// a server-side error once, at the boundary.
#[derive(Debug, Clone)]
pub struct LoggedError(pub std::sync::Arc<String>);

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = match &self {
            ApiError::WithBody { body, .. } => (status, Json(body.clone())).into_response(),
            ApiError::Unavailable { message, code, .. } => {
                let body = ErrorBody {
                    code: Some(code.to_string()),
                    error: message.clone(),
                };
                (status, Json(body)).into_response()
            }
            other => {
                let body = ErrorBody {
                    code: None,
                    error: other.to_string(),
                };
                (status, Json(body)).into_response()
            }
        };
        if status.is_server_error() || matches!(self, ApiError::Remote { .. }) {
            response
                .extensions_mut()
                .insert(LoggedError(std::sync::Arc::new(chain(&self))));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
