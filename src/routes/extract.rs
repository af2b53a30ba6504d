//! Extractors whose rejections use the API's error format.

use crate::auth::{AuthError, Principal};
use crate::domain::ReleaseId;
use crate::error::ApiError;
use crate::logsafe::{Admit, MAX_MESSAGE_CHARS, untrusted};
use crate::state::AppState;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

/// JSON body; malformed JSON is 400, wrong shapes 422, a missing content type 415, too large 413.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {}", e.body_text()))
            }
            JsonRejection::JsonDataError(e) => ApiError::unprocessable("invalid_body", e.body_text()),
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body is larger than {} bytes", super::MAX_BODY_BYTES),
            ),
            other => ApiError::bad_request("unreadable_body", other.body_text()),
        }
    }
}

/// An optional JSON body, whatever its content type: empty (or only whitespace) means the
/// defaults; anything else is read as [`ApiJson`] reads it, with the same errors.
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    Ok(axum::Json::<T>::from_bytes(body)?.0)
}

/// A page size from the query: `default` when absent, 400 outside `1..=max`.
pub fn page_limit(limit: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::bad_request("invalid_query", format!("limit must be between 1 and {max}")))
    }
}

/// Rows fetched with `limit + 1`: cut to `limit`, and true when another page exists.
pub fn split_page<T>(rows: &mut Vec<T>, limit: i64) -> bool {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    more
}

/// A release id from the path or the query: 400 `invalid_release_id` when malformed.
pub fn release_id(raw: &str) -> Result<ReleaseId, ApiError> {
    ReleaseId::parse(raw).map_err(|e| ApiError::bad_request(e.code, e.message))
}

/// Query string; unknown or malformed parameters are 400.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request("invalid_query", r.body_text())
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing_token", "send Authorization: Bearer <token>"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("missing_token", "send Authorization: Bearer <token>"))?;
        match state.verifier.verify(token).await {
            Ok(p) => Ok(p),
            Err(AuthError::Unavailable(reason)) => Err(ApiError::unavailable(
                "identity_provider_unavailable",
                "the token's signing keys cannot be fetched right now; try again",
                anyhow::anyhow!(reason),
            )),
            Err(e @ AuthError::InvalidPrincipal(_)) => {
                log_refusal(state, &e);
                Err(ApiError::unauthorized(
                    "invalid_principal",
                    "the token names its caller with empty, space-padded or invisible text",
                ))
            }
            Err(e) => {
                log_refusal(state, &e);
                Err(ApiError::unauthorized("invalid_token", "the bearer token is invalid or expired"))
            }
        }
    }
}

/// Logs a refused token within the budget for lines anyone can cause without a token. The
/// reason may quote the token (its `kid`, a claim), so it is escaped and cut.
fn log_refusal(state: &AppState, e: &AuthError) {
    let now = state.clock.now();
    if let Admit::Log { suppressed } = state.refusal_log.admit(now) {
        if suppressed > 0 {
            tracing::warn!(suppressed, "token refusals not logged (over the log budget for refusals)");
        }
        let reason = e.to_string();
        tracing::warn!(reason = %untrusted(&reason).max_chars(MAX_MESSAGE_CHARS), "token refused");
    }
}
