//! `X-Request-Id` on every request and every answer: the client's id when it is a valid one
//! (1 to 128 characters of `[A-Za-z0-9._-]`), else a fresh one. Outside every other layer, so
//! the trace span and the handler see it, and so every answer carries it, the error answers
//! the framework rewrote and the console's pages included.

use crate::request_id::{self, RequestId};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The header the id travels in, both ways.
pub(crate) const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, put in its extensions (the trace span reads it) and set for its task
/// (the audit trail reads it), and echoed on the answer.
pub(super) async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(RequestId::parse)
        .unwrap_or_else(RequestId::generate);
    req.extensions_mut().insert(id.clone());
    let mut response = request_id::scope(id.clone(), next.run(req)).await;
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}
