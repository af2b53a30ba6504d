//! Errors in Defender for Endpoint's shape, `{"error":{"code","message","target"}}` with a
//! fresh GUID as `target`, and MDE's codes: what a script written against MDE already checks
//! (`400 ActiveRequestAlreadyExists`, `404 ResourceNotFound`, ...). Every refusal dualkey makes
//! on these routes is first an [`ApiError`]; [`MdeFault::from`] is the one translation.

use crate::error::ApiError;
use crate::mde::types::{MdeErrorBody, MdeErrorDetail};
use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// `{"error": {"code", "message", "target"}}`: the body of every error on the MDE-compatible
/// routes, as MDE writes it (not dualkey's `Error`).
#[derive(utoipa::ToSchema)]
#[schema(as = MdeError)]
#[allow(dead_code, reason = "a description only: `MdeFault` writes the body")]
pub(super) struct MdeErrorDoc {
    error: MdeErrorObject,
}

/// MDE's `code` (what a script written against MDE checks), a `message` for people that ends
/// with dualkey's own code, and a fresh GUID as `target`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "a description only: `MdeFault` writes the body")]
struct MdeErrorObject {
    /// `InvalidRequestBody`, `ODataError`, `BadRequest`, `InvalidInput`, `ActiveRequestAlreadyExists`,
    /// `Unauthorized`, `Forbidden`, `DisallowedOperation`, `ResourceNotFound`, `TooManyRequests`,
    /// `ServiceUnavailable` or `InternalServerError`.
    code: String,
    /// For people; never internals.
    message: String,
    /// A fresh GUID per answer.
    #[schema(format = Uuid)]
    target: String,
}

/// An error answer in MDE's shape.
#[derive(Debug)]
pub(super) struct MdeFault {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// `Retry-After` and `WWW-Authenticate`, as dualkey's own answer would carry them.
    /// Boxed: most faults carry none, and the error stays small on every `Result` path.
    headers: Box<HeaderMap>,
}

impl MdeFault {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), headers: Box::default() }
    }

    /// 400 `InvalidRequestBody`.
    pub(super) fn invalid_body(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidRequestBody", message)
    }

    /// 400 `ODataError`: a query outside the OData dualkey supports.
    pub(super) fn odata(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ODataError", message)
    }

    /// 404 `ResourceNotFound` for a machine action (a release) that does not exist.
    pub(super) fn no_action(id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "ResourceNotFound", format!("Machine action {id} was not found."))
    }

    /// 405, for a route that exists with another method.
    pub(super) fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "BadRequest", "this route does not accept that method")
    }
}

/// MDE's status and code for one of dualkey's refusals.
fn translate(e: &ApiError) -> (StatusCode, &'static str) {
    let s = e.status;
    match e.code {
        "unknown_machine" | "invalid_machine_id" => (StatusCode::NOT_FOUND, "ResourceNotFound"),
        "release_not_found" | "invalid_release_id" => (StatusCode::NOT_FOUND, "ResourceNotFound"),
        "release_already_open" => (StatusCode::BAD_REQUEST, "ActiveRequestAlreadyExists"),
        "denied_by_policy" | "ticket_required" => (StatusCode::FORBIDDEN, "DisallowedOperation"),
        "invalid_comment" | "invalid_body" | "malformed_json" | "unreadable_body" => {
            (StatusCode::BAD_REQUEST, "InvalidRequestBody")
        }
        _ if s == StatusCode::PAYLOAD_TOO_LARGE || s == StatusCode::UNSUPPORTED_MEDIA_TYPE => (s, "InvalidRequestBody"),
        _ if s == StatusCode::UNAUTHORIZED => (s, "Unauthorized"),
        _ if s == StatusCode::FORBIDDEN => (s, "Forbidden"),
        _ if s == StatusCode::NOT_FOUND => (s, "ResourceNotFound"),
        _ if s == StatusCode::TOO_MANY_REQUESTS => (s, "TooManyRequests"),
        _ if s == StatusCode::SERVICE_UNAVAILABLE => (s, "ServiceUnavailable"),
        _ if s.is_server_error() => (s, "InternalServerError"),
        // 409, 422 and the rest: well-formed, refused (a device that is not isolated, say).
        _ if s == StatusCode::UNPROCESSABLE_ENTITY => (StatusCode::BAD_REQUEST, "InvalidInput"),
        _ => (StatusCode::BAD_REQUEST, "BadRequest"),
    }
}

impl From<ApiError> for MdeFault {
    fn from(e: ApiError) -> Self {
        let (status, code) = translate(&e);
        // dualkey's code stays in the text, for the person reading a playbook's run log.
        let message = format!("{} (dualkey: {})", e.message, e.code);
        // dualkey's own answer logs a 5xx's cause and carries the headers to keep.
        let answer = e.into_response();
        let mut headers = HeaderMap::new();
        for name in [header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
            if let Some(v) = answer.headers().get(&name) {
                headers.insert(name, v.clone());
            }
        }
        Self { status, code, message, headers: Box::new(headers) }
    }
}

impl IntoResponse for MdeFault {
    fn into_response(self) -> Response {
        let body = MdeErrorBody {
            error: MdeErrorDetail {
                code: Some(self.code.to_owned()),
                message: Some(self.message),
                target: Some(uuid::Uuid::new_v4().to_string()),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().extend(*self.headers);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    async fn answer(e: ApiError) -> (StatusCode, serde_json::Value, HeaderMap) {
        let r = MdeFault::from(e).into_response();
        let (status, headers) = (r.status(), r.headers().clone());
        let body = serde_json::from_slice(&to_bytes(r.into_body(), 4096).await.unwrap()).unwrap();
        (status, body, headers)
    }

    #[tokio::test]
    async fn dualkey_refusals_become_the_codes_an_mde_caller_checks() {
        for (e, status, code) in [
            (ApiError::conflict("release_already_open", "x"), 400, "ActiveRequestAlreadyExists"),
            (ApiError::unprocessable("unknown_machine", "x"), 404, "ResourceNotFound"),
            (ApiError::unprocessable("invalid_comment", "x"), 400, "InvalidRequestBody"),
            (ApiError::unprocessable("denied_by_policy", "x"), 403, "DisallowedOperation"),
            (ApiError::unprocessable("device_not_isolated", "x"), 400, "InvalidInput"),
            (ApiError::unauthorized("invalid_token", "x"), 401, "Unauthorized"),
            (ApiError::missing_role("Release.Request"), 403, "Forbidden"),
            (ApiError::internal(anyhow::anyhow!("secret cause")), 500, "InternalServerError"),
        ] {
            let (got, body, _) = answer(e).await;
            assert_eq!((got.as_u16(), body["error"]["code"].as_str().unwrap()), (status, code));
            assert!(uuid::Uuid::parse_str(body["error"]["target"].as_str().unwrap()).is_ok());
            assert!(!body.to_string().contains("secret cause"));
        }
    }

    #[tokio::test]
    async fn retry_after_and_the_bearer_challenge_survive_the_translation() {
        let (_, _, h) =
            answer(ApiError::new(StatusCode::TOO_MANY_REQUESTS, "request_rate_exceeded", "x").with_retry_after(7))
                .await;
        assert_eq!(h[header::RETRY_AFTER], "7");
        let (_, _, h) = answer(ApiError::unauthorized("missing_token", "x")).await;
        assert!(h[header::WWW_AUTHENTICATE].to_str().unwrap().starts_with("Bearer"));
    }
}
