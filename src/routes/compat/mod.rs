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
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use fault::{MdeErrorDoc, MdeFault};
use serde_json::Value;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

/// The OpenAPI tag of these operations; `openapi::finish` gives them MDE's error shape by it.
pub(super) const TAG: &str = "mde-compatible";

/// MDE's own path prefixes, the latest version and v1.0 named, with the suffix that keeps
/// each prefix's operation ids unique in the document.
const PREFIXES: [(&str, &str); 2] = [("/api", ""), ("/api/v1.0", "_v1_0")];

/// The routes and their operations under each prefix, or none when `[compat] mde_routes` is
/// off (they are then unknown routes, and absent from the OpenAPI document).
pub(super) fn router(settings: &CompatSettings) -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::new();
    if !settings.mde_routes {
        return router;
    }
    for (prefix, suffix) in PREFIXES {
        let mut operations = OpenApiRouter::new()
            .routes(mde_methods(routes!(unisolate)))
            .routes(mde_methods(routes!(list::list)))
            .routes(mde_methods(routes!(show)));
        suffix_operation_ids(operations.get_openapi_mut(), suffix);
        router = router.nest(prefix, operations);
    }
    router
}

/// A route-level fallback for the other methods: the API's 405 would not be in MDE's shape.
fn mde_methods((schemas, paths, methods): UtoipaMethodRouter<AppState>) -> UtoipaMethodRouter<AppState> {
    (schemas, paths, methods.fallback(|| async { MdeFault::method_not_allowed() }))
}

fn suffix_operation_ids(api: &mut utoipa::openapi::OpenApi, suffix: &str) {
    for item in api.paths.paths.values_mut() {
        for op in [&mut item.get, &mut item.post].into_iter().flatten() {
            if let Some(id) = &mut op.operation_id {
                id.push_str(suffix);
            }
        }
    }
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

/// MDE's unisolate body.
#[derive(utoipa::ToSchema)]
#[schema(as = MdeUnisolateBody)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "a description only: `comment_of` reads the body")]
struct UnisolateBody {
    /// Why: at least `policy.min_comment_len` visible characters, at most 1000, no control,
    /// format or text-direction characters (trimmed). The member's name is read in any case.
    #[serde(rename = "Comment")]
    #[schema(min_length = 1, pattern = r"\S")]
    comment: String,
}

/// Unisolate a machine, as MDE's route: requests a release of the machine exactly as
/// `POST /api/v1/releases` with this comment and no ticket, and answers with it as a
/// `Pending` Unisolate action; a second person approves it as usual. Requester role.
#[utoipa::path(
    post,
    path = "/machines/{id}/unisolate",
    operation_id = "mde_unisolate",
    tag = TAG,
    params(("id" = String, Path, description = "MDE's machine id: 40 hexadecimal characters")),
    request_body = UnisolateBody,
    responses(
        (status = 201, description = "Requested: the release as a `Pending` Unisolate action", body = MachineActionView,
            headers(("Location" = String, description = "`/api/machineactions/{release id}`"))),
        (status = 400, description = "`InvalidRequestBody` (not a JSON object; `Comment` missing, blank, not a string, \
            given twice; another member; `invalid_comment`), `ActiveRequestAlreadyExists` (`release_already_open`), \
            `InvalidInput` (`device_not_isolated`), `BadRequest` (another well-formed refusal)", body = MdeErrorDoc),
        (status = 403, description = "`Forbidden` (`missing_role`), `DisallowedOperation` (`denied_by_policy`, \
            `ticket_required`)", body = MdeErrorDoc),
        (status = 404, description = "`ResourceNotFound` (MDE has no such machine, or `{id}` is not 40 hexadecimal \
            characters)", body = MdeErrorDoc),
        (status = 429, description = "`TooManyRequests` (`request_rate_exceeded`, with `Retry-After`)", body = MdeErrorDoc),
        (status = 503, description = "`ServiceUnavailable` (`mde_unavailable`, `mde_not_configured`, `mde_busy` with \
            `Retry-After`): nothing stored", body = MdeErrorDoc),
    )
)]
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

/// Get a machine action: the release as its Unisolate action, its status as it stands. Any
/// role that reads releases.
#[utoipa::path(
    get,
    path = "/machineactions/{id}",
    operation_id = "mde_get_machine_action",
    tag = TAG,
    params(("id" = String, Path, description = "The action's id: a release id")),
    responses(
        (status = 200, description = "The action", body = MachineActionView),
        (status = 403, description = "`Forbidden` (`missing_role`: no role that reads releases)", body = MdeErrorDoc),
        (status = 404, description = "`ResourceNotFound` (no release has this id)", body = MdeErrorDoc),
    )
)]
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
