//! Liveness and readiness, without authentication.

use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// The process is up.
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The database answers, and its storage takes writes.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    // Storage: off from a write that failed with a storage error until a write succeeds again.
    let storage = if state.db.write_health().is_writable() { "writable" } else { "failing" };
    if !state.db.ping().await {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "database": "unreachable"})))
    } else if storage != "writable" {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "storage": storage})))
    } else {
        (StatusCode::OK, Json(json!({"status": "ready", "storage": storage})))
    }
}
