//! The MDE-compatible front door (`[compat] mde_routes`): Defender for Endpoint's own
//! `POST /api/machines/{id}/unisolate`, `GET /api/machineactions/{id}` and
//! `GET /api/machineactions?$filter=...` (also under `/api/v1.0/`), so a script or playbook
//! written for MDE requests a release instead of releasing the device. A request goes through
//! the same service as `POST /api/v1/releases` (policy, audit, notifications); the release is
//! shown as MDE's MachineAction; every error is in MDE's shape (see [`fault`]).

mod action;
mod fault;
mod filter;

use super::extract::json_content_type;
use crate::auth::Principal;
use crate::db::releases::ListFilter;
use crate::domain::{Release, ReleaseId, ReleaseStatus};
use crate::error::ApiError;
use crate::mde::{ActionStatus, percent_encode};
use crate::service::reading;
use crate::service::request::request;
use crate::settings::CompatSettings;
use crate::state::AppState;
use action::MachineActionView;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use fault::MdeFault;
use filter::Filter;
use serde::Serialize;
use serde_json::Value;

/// MDE's own path prefixes: the latest version, and v1.0 named.
const PREFIXES: [&str; 2] = ["/api", "/api/v1.0"];
/// The most actions one page of a list holds; `@odata.nextLink` leads to the rest.
const PAGE: usize = 200;
/// The largest `$top` MDE accepts.
const MAX_TOP: usize = 10_000;

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
            .route(&format!("{prefix}/machineactions"), get(list).fallback(other_method))
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

/// MDE's collection envelope.
#[derive(Serialize)]
struct Collection {
    #[serde(rename = "@odata.context")]
    context: String,
    value: Vec<MachineActionView>,
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
}

/// A list request's `$filter`, `$top` and `$skip`.
struct Paging {
    filter_text: Option<String>,
    filter: Filter,
    top: Option<usize>,
    skip: usize,
}

impl Paging {
    fn parse(pairs: Vec<(String, String)>) -> Result<Self, MdeFault> {
        let (mut filter_text, mut top, mut skip) = (None, None, None);
        for (key, value) in pairs {
            let slot = match key.as_str() {
                "$filter" => &mut filter_text,
                "$top" => &mut top,
                "$skip" => &mut skip,
                _ => return Err(MdeFault::odata(format!("The query parameter '{key}' is not supported."))),
            };
            if slot.replace(value).is_some() {
                return Err(MdeFault::odata(format!("The query parameter '{key}' is given twice.")));
            }
        }
        let number = |key: &str, v: Option<String>| {
            v.map(|v| {
                v.trim().parse::<usize>().map_err(|_| MdeFault::odata(format!("Invalid value for {key}: '{v}'.")))
            })
            .transpose()
        };
        let top = number("$top", top)?;
        if top.is_some_and(|t| t > MAX_TOP) {
            return Err(MdeFault::odata(format!("The limit of '{MAX_TOP}' for Top query has been exceeded.")));
        }
        let filter = Filter::parse(filter_text.as_deref()).map_err(MdeFault::odata)?;
        Ok(Self { filter_text, filter, top, skip: number("$skip", skip)?.unwrap_or(0) })
    }

    /// The query of the page after one of `returned` actions: as MDE links, the same `$filter`
    /// and `$top` (a page size), `$skip` advanced.
    fn next_query(&self, returned: usize) -> String {
        let mut q = String::new();
        if let Some(f) = &self.filter_text {
            q.push_str(&format!("$filter={}&", percent_encode(f)));
        }
        if let Some(top) = self.top {
            q.push_str(&format!("$top={top}&"));
        }
        q.push_str(&format!("$skip={}", self.skip + returned));
        q
    }
}

/// `GET /api/machineactions`: releases as Unisolate actions, newest first, at most [`PAGE`]
/// per answer (`@odata.nextLink` leads on), filtered by `$filter` (see [`filter`]).
async fn list(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Collection>, MdeFault> {
    let p = reader(&state, principal)?;
    let Query(pairs) = query.map_err(|e| MdeFault::odata(e.body_text()))?;
    let paging = Paging::parse(pairs)?;
    let want = paging.top.unwrap_or(MAX_TOP).min(PAGE);
    let mut found = if paging.filter.matches_nothing() || want == 0 {
        Vec::new()
    } else {
        matching(&state, &p, &paging.filter, paging.skip, want + 1).await?
    };
    let more = found.len() > want;
    found.truncate(want);
    let next_link = more.then(|| format!("{}/api/machineactions?{}", base(&state), paging.next_query(want)));
    let value = found.into_iter().map(|r| MachineActionView::new(r, None)).collect();
    Ok(Json(Collection { context: metadata(&state, "MachineActions"), value, next_link }))
}

/// Up to `limit` releases `filter` matches, newest first, after skipping `skip` of them. The
/// machine (and a `Pending` status, the one MDE status that is one release status) narrow the
/// query; the rest is decided per release, page by page, as the status mapping is not SQL.
async fn matching(
    state: &AppState,
    p: &Principal,
    filter: &Filter,
    mut skip: usize,
    limit: usize,
) -> Result<Vec<Release>, MdeFault> {
    const SCAN_PAGE: i64 = 200;
    let mut found = Vec::new();
    let mut cursor = None;
    loop {
        let rows = reading::list(
            state,
            p,
            ListFilter {
                status: (filter.status == Some(ActionStatus::Pending)).then_some(ReleaseStatus::Pending),
                machine_id: filter.machine.clone().flatten(),
                requested_by: None,
                before_seq: cursor,
                awaiting_decision: false,
                limit: SCAN_PAGE,
            },
        )
        .await?;
        let exhausted = (rows.len() as i64) < SCAN_PAGE;
        cursor = rows.last().map(|(seq, _)| *seq);
        for (_, r) in rows {
            if !filter.matches(&r) {
                continue;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            found.push(r);
            if found.len() == limit {
                return Ok(found);
            }
        }
        if exhausted {
            return Ok(found);
        }
    }
}
