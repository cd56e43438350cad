use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use thiserror::Error;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
    /// 503 `{"error","code"}`: a dependency is down; the client may retry.
    #[error("{message}")]
    Unavailable { message: String, code: &'static str },
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
    /// Maps any error into a 500 with a generic `context` for the client, keeping the source for
    /// the log: `.map_err(ApiError::internal("failed to create workspace"))`.
    pub fn internal<E>(context: &str) -> impl FnOnce(E) -> ApiError + '_
    where
        E: Into<BoxError>,
    {
        move |source| ApiError::Internal {
            context: context.to_string(),
            source: source.into(),
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

/// Whether a cause in the chain is the database being unreachable (see
/// [`store::StoreError::is_unavailable`]).
fn datastore_unavailable(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if current
            .downcast_ref::<store::StoreError>()
            .is_some_and(store::StoreError::is_unavailable)
        {
            return true;
        }
        cause = current.source();
    }
    false
}

/// Whether a cause in the chain is PostgreSQL refusing a text value the client sent (see
/// [`store::StoreError::is_invalid_text`]).
fn invalid_text(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if current
            .downcast_ref::<store::StoreError>()
            .is_some_and(store::StoreError::is_invalid_text)
        {
            return true;
        }
        cause = current.source();
    }
    false
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A NUL character cannot be stored in a text column: bad input, not a server fault.
        if let ApiError::Internal { source, .. } = &self
            && invalid_text(source.as_ref())
        {
            return ApiError::BadRequest("text must not contain NUL characters".to_string())
                .into_response();
        }
        // A database outage in any handler answers like the auth guard's (contract §5.2): a 503
        // naming the datastore that the client may retry, not a 500.
        if let ApiError::Internal { source, .. } = &self
            && datastore_unavailable(source.as_ref())
        {
            let logged = LoggedError(std::sync::Arc::new(chain(&self)));
            let mut response = ApiError::Unavailable {
                message: "platform datastore unavailable — retry shortly".to_string(),
                code: "platform_unavailable",
            }
            .into_response();
            response.extensions_mut().insert(logged);
            return response;
        }
        let status = self.status();
        let body = match &self {
            ApiError::WithBody { body, .. } => body.clone(),
            ApiError::Unavailable { message, code } => json!({ "error": message, "code": code }),
            other => json!({ "error": other.to_string() }),
        };
        let mut response = (status, Json(body)).into_response();
        if status.is_server_error() || matches!(self, ApiError::Remote { .. }) {
            response
                .extensions_mut()
                .insert(LoggedError(std::sync::Arc::new(chain(&self))));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
