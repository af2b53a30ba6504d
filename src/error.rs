//! The API's one error type. Clients get `{"error":{"code","message"}}` with a stable code;
//! causes of 5xx answers go to the log, never to the client.

use crate::domain::ParseError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra fields for the error object (e.g. the id of the open release).
    pub extra: Map<String, Value>,
    /// Sent as `Retry-After` (seconds): when trying again can succeed.
    retry_after_secs: Option<u64>,
    /// The cause, logged for 5xx answers.
    source: Option<anyhow::Error>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), extra: Map::new(), retry_after_secs: None, source: None }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// Answers with `Retry-After: secs`.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn missing_role(role: &str) -> Self {
        Self::forbidden("missing_role", format!("this action needs the `{role}` role"))
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>, cause: impl Into<anyhow::Error>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message);
        e.source = Some(cause.into());
        e
    }

    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        let mut e =
            Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error; see the daemon's log");
        e.source = Some(cause.into());
        e
    }
}

impl From<ParseError> for ApiError {
    fn from(e: ParseError) -> Self {
        // Invalid ids in the path are 400; invalid body fields are 422 (decided by the caller).
        Self::unprocessable(e.code, e.message)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            storage if matches!(storage, sqlx::Error::PoolClosed) || crate::db::is_storage_error(storage) => {
                Self::unavailable(
                    "storage_unavailable",
                    "the database cannot be reached or written now (its server is unreachable, or its storage is full \
                     or failing); nothing was stored; try again later",
                    e,
                )
            }
            // SQLite's lock, or PostgreSQL's `lock_timeout` on the replicas' write lock (55P03).
            sqlx::Error::Database(d)
                if d.message().contains("database is locked") || d.code().as_deref() == Some("55P03") =>
            {
                Self::unavailable("database_busy", "the database is busy; try again", e)
            }
            _ => Self::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            match &self.source {
                Some(cause) => tracing::error!(code = self.code, error = format!("{cause:#}"), "request failed"),
                None => tracing::error!(code = self.code, "request failed"),
            }
        }
        let mut error = Map::new();
        error.insert("code".into(), Value::from(self.code));
        error.insert("message".into(), Value::from(self.message));
        error.extend(self.extra);
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = if self.code == "missing_token" {
                "Bearer realm=\"dualkey\""
            } else {
                "Bearer realm=\"dualkey\", error=\"invalid_token\""
            };
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}
