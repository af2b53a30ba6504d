//! `GET /metrics`: Prometheus' text format, without a token. On the main listener unless
//! `[server] metrics_bind` gives it a listener of its own (then only there).

use crate::error::ApiError;
use crate::metrics::text::CONTENT_TYPE;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// The listener of `[server] metrics_bind`: `/metrics` and nothing else.
pub(crate) fn own_listener(state: AppState) -> axum::Router {
    axum::Router::new().route("/metrics", get(page)).with_state(state)
}

/// Counters, histograms and gauges of this dualkey in the Prometheus text format (0.0.4):
/// releases by status, decisions, MDE calls and budget, the worker's queue, the audit head,
/// deliveries. Counters are this process's; gauges read from the database are every
/// replica's. Answers 404 `not_found` here when `[server] metrics_bind` serves it elsewhere.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    security(()),
    responses(
        (status = 200, description = "The metrics", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
        (status = 404, description = "`not_found`: served on `[server] metrics_bind` instead", body = crate::routes::openapi::ErrorBody),
    )
)]
async fn metrics(State(state): State<AppState>) -> Response {
    if state.settings.server.metrics_bind.is_some() {
        return ApiError::not_found("not_found", "metrics are served on server.metrics_bind, not here").into_response();
    }
    page(State(state)).await
}

async fn page(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], crate::metrics::scrape::page(&state).await).into_response()
}
