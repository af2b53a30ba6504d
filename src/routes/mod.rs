//! HTTP routes. Handlers parse the wire format into domain values, call a service, and shape
//! the answer; they hold no SQL.

mod audit;
mod batches;
mod bypasses;
mod client_config;
mod compat;
mod console;
mod decisions;
mod extract;
mod health;
mod json_errors;
pub(crate) mod metrics;
mod notifications;
mod openapi;
mod proofs;
mod releases;
mod request_id;

use crate::error::ApiError;
use crate::settings::CompatSettings;
use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

/// Request bodies larger than this are refused with 413.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// Every route for programs, each registered with `utoipa_axum::routes!` so that it is in the
/// OpenAPI document ([`openapi::document`]) exactly as the router answers it. A route added
/// with plain `.route()` here would be missing from the document (the drift test fails). The
/// MDE-compatible routes are in both only when `[compat] mde_routes` is on.
fn api(compat: &CompatSettings) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(health::router())
        .merge(metrics::router())
        .merge(client_config::router())
        .routes(utoipa_axum::routes!(openapi::openapi_json))
        .nest("/api/v1/releases", releases::router())
        .nest("/api/v1/release-batches", batches::router())
        .nest("/api/v1/audit", audit::router().merge(proofs::router()))
        .nest("/api/v1/notifications", notifications::router())
        .nest("/api/v1/bypasses", bypasses::router())
        .merge(compat::router(compat))
}

/// The whole API, and the console (HTML pages for people, not in the OpenAPI document).
pub(crate) fn router(state: AppState) -> Router {
    let (api, _) = api(&state.settings.compat).split_for_parts();
    api.merge(console::router())
        .fallback(|| async {
            ApiError::not_found("not_found", "no such route; see the API documentation in README.md")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(json_errors::json_errors))
        .layer(axum::middleware::from_fn_with_state(state.clone(), console::security_headers))
        // Method, path and the request's id only: never headers (so never a bearer token), and
        // the path escaped and cut, as it is the client's text. The span is at info, so every
        // line the request causes names its id; the per-request lines themselves are debug.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &axum::extract::Request| {
                    let path = crate::logsafe::untrusted(req.uri().path()).max_chars(crate::logsafe::MAX_MESSAGE_CHARS);
                    let id = req
                        .extensions()
                        .get::<crate::request_id::RequestId>()
                        .map(|id| id.as_str())
                        .unwrap_or_default();
                    tracing::info_span!("request", method = %req.method(), path = %path, request_id = %id)
                })
                .on_request(|_: &axum::extract::Request, _: &tracing::Span| tracing::debug!("request received"))
                .on_response(|r: &axum::response::Response, latency: std::time::Duration, _: &tracing::Span| {
                    tracing::debug!(
                        status = r.status().as_u16(),
                        latency_ms = latency.as_millis() as u64,
                        "request answered"
                    )
                }),
        )
        .layer(axum::middleware::from_fn(request_id::request_id))
        .with_state(state)
}
