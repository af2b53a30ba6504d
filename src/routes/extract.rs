//! Extractors whose rejections use the API's error format.

use crate::auth::{AuthError, Principal};
use crate::domain::ReleaseId;
use crate::error::ApiError;
use crate::logsafe::{Admit, MAX_MESSAGE_CHARS, untrusted};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::{DeserializeOwned, IgnoredAny};

/// A JSON object body sent as `Content-Type: application/json` (or `application/*+json`):
/// another content type is 415 `unsupported_media_type`, a body over the limit 413
/// `body_too_large`, malformed JSON 400 `malformed_json`, a JSON value that is not an object
/// (`[]`, `"text"`) or has wrong, missing or unknown fields 422 `invalid_body`.
pub(super) struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = json_content_type(req.headers());
        let body = Bytes::from_request(req, state).await?;
        if !is_json {
            return Err(unsupported_media_type());
        }
        json_object(&body).map(ApiJson)
    }
}

/// A body that may be left out: empty (or only whitespace), whatever its content type, means
/// `T::default()`; anything else must be what [`ApiJson`] accepts, with the same errors.
pub(super) struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = json_content_type(req.headers());
        let body = Bytes::from_request(req, state).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if !is_json {
            return Err(unsupported_media_type());
        }
        json_object(&body).map(OptionalJson)
    }
}

pub(super) fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let mime = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as a JSON object with Content-Type: application/json",
    )
}

/// `body` as `T`, only when it is a JSON object: serde would otherwise read a struct from an
/// array (`[machine_id, comment]`), which no field name, so no `deny_unknown_fields`, guards.
fn json_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let opens_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if !opens_object && serde_json::from_slice::<IgnoredAny>(body).is_ok() {
        return Err(ApiError::unprocessable("invalid_body", "the body must be a JSON object"));
    }
    Ok(axum::Json::<T>::from_bytes(body)?.0)
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {}", e.body_text()))
            }
            JsonRejection::JsonDataError(e) => ApiError::unprocessable("invalid_body", e.body_text()),
            JsonRejection::MissingJsonContentType(_) => unsupported_media_type(),
            JsonRejection::BytesRejection(e) => e.into(),
            other => ApiError::bad_request("unreadable_body", other.body_text()),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            body_too_large()
        } else {
            ApiError::bad_request("unreadable_body", r.body_text())
        }
    }
}

/// 413 `body_too_large`.
pub(super) fn body_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the body is larger than {} bytes", super::MAX_BODY_BYTES),
    )
}

/// A path parameter; one that cannot be decoded (`%FF` is not UTF-8) is 400 `invalid_path`.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(super) struct ApiPath<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::bad_request("invalid_path", r.body_text())
    }
}

/// A page size from the query: `default` when absent, 400 outside `1..=max`.
pub(super) fn page_limit(limit: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::bad_request("invalid_query", format!("limit must be between 1 and {max}")))
    }
}

/// A `cursor` from the query (a `next_cursor` given out before): 400 `invalid_cursor` otherwise.
pub(super) fn cursor(raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    raw.map(|c| {
        c.parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ApiError::bad_request("invalid_cursor", "cursor must be a value from next_cursor"))
    })
    .transpose()
}

/// Rows fetched with `limit + 1`: cut to `limit`, and true when another page exists.
pub(super) fn split_page<T>(rows: &mut Vec<T>, limit: i64) -> bool {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    more
}

/// A release id from the path or the query: 400 `invalid_release_id` when malformed.
pub(super) fn release_id(raw: &str) -> Result<ReleaseId, ApiError> {
    ReleaseId::parse(raw).map_err(|e| ApiError::bad_request(e.code, e.message))
}

/// Query string; unknown or malformed parameters are 400.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(super) struct ApiQuery<T>(pub T);

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
    log_refusal_reason(state, &format!("token refused: {e}"));
}

/// Logs `reason` (escaped and cut) within the budget for refusals anyone can cause: refused
/// tokens, refused console sign-ins.
pub(crate) fn log_refusal_reason(state: &AppState, reason: &str) {
    let now = state.clock.now();
    if let Admit::Log { suppressed } = state.refusal_log.admit(now) {
        if suppressed > 0 {
            tracing::warn!(suppressed, "refusals not logged (over the log budget for refusals)");
        }
        tracing::warn!(reason = %untrusted(reason).max_chars(MAX_MESSAGE_CHARS), "refused");
    }
}
