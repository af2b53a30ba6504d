//! The one net for errors the framework answers by itself (a rejection of an extractor we do
//! not wrap, a body limit hit before a handler runs, a layer's refusal): every error response
//! that leaves the router is `{"error":{"code","message"}}` with `Content-Type:
//! application/json`. Our own errors are JSON already and pass through untouched; the
//! extractors in `extract.rs` give the specific codes, this gives a stable code per status.

use crate::error::ApiError;
use axum::body::to_bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The most of a framework's plain-text error kept as the message.
const MAX_MESSAGE_BYTES: usize = 512;

/// Rewrites an error response that is not JSON into the API's error format.
pub(super) async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json") || ct.starts_with("text/html"));
    // The console's own HTML pages (its error pages included) are for people, not rewritten.
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = to_bytes(body, MAX_MESSAGE_BYTES * 4).await.unwrap_or_default();
    let mut message: String = String::from_utf8_lossy(&text).trim().chars().take(MAX_MESSAGE_BYTES).collect();
    if message.is_empty() || status.is_server_error() {
        message = status.canonical_reason().unwrap_or("error").to_lowercase();
    }
    let mut rewritten = ApiError::new(status, code_of(status), message).into_response();
    for name in [header::RETRY_AFTER, header::ALLOW, header::CONNECTION] {
        if let Some(value) = parts.headers.get(&name) {
            rewritten.headers_mut().insert(name, value.clone());
        }
    }
    rewritten
}

/// The stable code for an error status the framework chose.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::LENGTH_REQUIRED => "length_required",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal_error",
        _ => "bad_request",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    #[tokio::test]
    async fn a_plain_text_framework_error_becomes_json_with_a_stable_code() {
        let plain = (StatusCode::PAYLOAD_TOO_LARGE, "Failed to buffer the request body: length limit exceeded");
        let r = json_errors(plain.into_response()).await;
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let body: serde_json::Value = serde_json::from_slice(&to_bytes(r.into_body(), 4096).await.unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "body_too_large");
        assert_eq!(body["error"]["message"], "Failed to buffer the request body: length limit exceeded");
    }

    #[tokio::test]
    async fn json_errors_and_successes_pass_untouched() {
        let ok = Response::new(Body::from("plain success"));
        let r = json_errors(ok).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers().get(header::CONTENT_TYPE).is_none());
        let ours = ApiError::conflict("already_approved", "x").into_response();
        let r = json_errors(ours).await;
        let body: serde_json::Value = serde_json::from_slice(&to_bytes(r.into_body(), 4096).await.unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "already_approved");
    }

    #[tokio::test]
    async fn a_server_error_from_the_framework_carries_no_internals() {
        let r = json_errors((StatusCode::INTERNAL_SERVER_ERROR, "panic at src/secret.rs:12").into_response()).await;
        let body: serde_json::Value = serde_json::from_slice(&to_bytes(r.into_body(), 4096).await.unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "internal_error");
        assert_eq!(body["error"]["message"], "internal server error");
    }
}
