//! The MDE-compatible front door (`[compat] mde_routes`): Defender for Endpoint's own
//! `POST /api/machines/{id}/unisolate`, `GET /api/machineactions/{id}` and
//! `GET /api/machineactions?$filter=...` (also under `/api/v1.0/`), so a script or playbook
//! written for MDE requests a release instead of releasing the device. A request goes through
//! the same service as `POST /api/v1/releases` (policy, audit, notifications); the release is
//! shown as MDE's MachineAction; every error is in MDE's shape (see [`fault`]).

mod action;
mod fault;
mod filter;
mod list;

use super::extract::json_content_type;
use crate::auth::Principal;
use crate::domain::ReleaseId;
use crate::error::ApiError;
use crate::service::reading;
use crate::service::request::request;
use crate::settings::CompatSettings;
use crate::state::AppState;
use action::MachineActionView;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use fault::MdeFault;
use serde_json::Value;

/// MDE's own path prefixes: the latest version, and v1.0 named.
const PREFIXES: [&str; 2] = ["/api", "/api/v1.0"];

/// The routes, or none when `[compat] mde_routes` is off (they are then unknown routes).
pub(super) fn router(settings: &CompatSettings) -> Router<AppState> {
    let mut router = Router::new();
    if !settings.mde_routes {
        return router;
    }
    // A route-level fallback: the API's 405 would not be in MDE's shape.
    let other_method = || async { MdeFault::method_not_allowed() };
    for prefix in PREFIXES {
        router = router
            .route(&format!("{prefix}/machines/{{id}}/unisolate"), post(unisolate).fallback(other_method))
            .route(&format!("{prefix}/machineactions"), get(list::list).fallback(other_method))
            .route(&format!("{prefix}/machineactions/{{id}}"), get(show).fallback(other_method));
    }
    router
}

/// This daemon's origin as its clients reach it (`[console] public_url`, else the listener).
fn base(state: &AppState) -> String {
    match &state.settings.console.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => format!("http://{}", state.local_addr),
    }
}

/// Where this daemon's MDE-style entities are described, for `@odata.context`.
fn metadata(state: &AppState, entity: &str) -> String {
    format!("{}/api/$metadata#{entity}", base(state))
}

/// The caller, and 403 unless they may read releases.
fn reader(state: &AppState, principal: Result<Principal, ApiError>) -> Result<Principal, MdeFault> {
    let p = principal?;
    reading::require_reader(state, &p)?;
    Ok(p)
}

/// `POST /api/machines/{id}/unisolate` with `{"Comment": "..."}`: requests a release of the
/// machine and answers 201 with it as a `Pending` Unisolate action.
async fn unisolate(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, MdeFault> {
    let p = principal?;
    let role = &state.settings.auth.requester_role;
    if !p.has_role(role) {
        return Err(ApiError::missing_role(role).into());
    }
    let Path(machine) = path.map_err(ApiError::from)?;
    let comment = comment_of(&headers, &body.map_err(ApiError::from)?)?;
    let policy = state.policy();
    let req = super::releases::new_request(&policy, &machine, &comment, None, false)?;
    let release = request(&state, &policy, &p, req).await?;
    let location = format!("/api/machineactions/{}", release.id);
    let view = MachineActionView::new(release, Some(metadata(&state, "MachineActions/$entity")));
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(view)))
}

/// The `Comment` of MDE's body: a JSON object with that one member (its name in any case, as
/// MDE reads it), a string that is not blank.
fn comment_of(headers: &HeaderMap, body: &[u8]) -> Result<String, MdeFault> {
    if !json_content_type(headers) {
        let e = MdeFault::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "InvalidRequestBody",
            "Content-Type must be application/json.",
        );
        return Err(e);
    }
    let Ok(Value::Object(members)) = serde_json::from_slice::<Value>(body) else {
        return Err(MdeFault::invalid_body("Request body is incorrect: send a JSON object {\"Comment\": \"...\"}."));
    };
    let mut comment = None;
    for (name, value) in members {
        if !name.eq_ignore_ascii_case("comment") {
            return Err(MdeFault::invalid_body(format!("Request body is incorrect: unknown parameter '{name}'.")));
        }
        if comment.is_some() {
            return Err(MdeFault::invalid_body("Request body is incorrect: Comment is given twice."));
        }
        let Value::String(text) = value else {
            return Err(MdeFault::invalid_body("Request body is incorrect: Comment must be a string."));
        };
        comment = Some(text);
    }
    match comment {
        None => Err(MdeFault::invalid_body("Parameter Comment is missing.")),
        Some(text) if text.trim().is_empty() => Err(MdeFault::invalid_body("Parameter Comment is empty.")),
        Some(text) => Ok(text),
    }
}

/// `GET /api/machineactions/{id}`: the release as its Unisolate action, status as it stands.
async fn show(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<MachineActionView>, MdeFault> {
    let p = reader(&state, principal)?;
    let Path(raw) = path.map_err(ApiError::from)?;
    // Any text that is not a release id names no action dualkey has.
    let id = ReleaseId::parse(&raw).map_err(|_| MdeFault::no_action(&raw))?;
    let release = reading::get(&state, &p, id).await.map_err(|e| match e.code {
        "release_not_found" => MdeFault::no_action(&raw),
        _ => e.into(),
    })?;
    Ok(Json(MachineActionView::new(release, Some(metadata(&state, "MachineActions/$entity")))))
}
