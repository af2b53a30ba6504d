//! `/api/v1/releases`: request, read, approve, reject, cancel.

use super::decisions::{NoFields, OptionalComment, RequiredComment};
use super::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson, cursor, page_limit, release_id, split_page};
use crate::auth::Principal;
use crate::db::releases::ListFilter;
use crate::domain::{Comment, MachineId, Release, ReleaseStatus, Ticket};
use crate::error::ApiError;
use crate::service::reading;
use crate::service::releases as service;
use crate::service::request::{NewRequest, request};
use crate::state::AppState;
use crate::views::ReleaseView;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/", post(create).get(list))
        .route("/{id}", get(show))
        .route("/{id}/approve", post(approve))
        .route("/{id}/reject", post(reject))
        .route("/{id}/cancel", post(cancel))
        .route("/{id}/evidence", get(evidence))
}

/// The release as the API shows it.
fn view(state: &AppState, r: Release) -> Json<ReleaseView> {
    Json(ReleaseView::new(r, &state.settings.auth.approver_role))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    machine_id: String,
    comment: String,
    #[serde(default)]
    ticket: Option<String>,
    #[serde(default)]
    break_glass: bool,
}

async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    // One policy snapshot checks the comment and decides the request.
    let policy = state.policy();
    let req = new_request(&policy, &body.machine_id, &body.comment, body.ticket.as_deref(), body.break_glass)?;
    let release = request(&state, &policy, &principal, req).await?;
    let location = format!("/api/v1/releases/{}", release.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], view(&state, release)))
}

/// A request's fields as the wire gives them, parsed under `policy` (422 naming what is wrong).
pub(super) fn new_request(
    policy: &crate::rules::Policy,
    machine_id: &str,
    comment: &str,
    ticket: Option<&str>,
    break_glass: bool,
) -> Result<NewRequest, ApiError> {
    Ok(NewRequest {
        machine_id: MachineId::parse(machine_id)?,
        comment: Comment::parse(comment, policy.min_comment_len() as usize)?,
        ticket: ticket.map(Ticket::parse).transpose()?,
        break_glass,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    machine_id: Option<String>,
    requested_by: Option<String>,
    /// Only releases the caller may decide now.
    #[serde(default)]
    waiting_for_me: bool,
    /// Only releases the caller asked for.
    #[serde(default)]
    mine: bool,
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Serialize)]
struct Page {
    items: Vec<ReleaseView>,
    next_cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Page>, ApiError> {
    let limit = page_limit(q.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let before_seq = cursor(q.cursor.as_deref())?;
    if q.waiting_for_me {
        if q.status.is_some() || q.machine_id.is_some() || q.requested_by.is_some() || q.mine {
            return Err(ApiError::bad_request("invalid_query", "waiting_for_me combines only with limit and cursor"));
        }
        let mut rows = reading::waiting_for(&state, &principal, before_seq, limit + 1).await?;
        return Ok(page(&state, &mut rows, limit));
    }
    let bad_query = |e: crate::domain::ParseError| ApiError::bad_request(e.code, e.message);
    let requested_by = match (q.mine, q.requested_by) {
        (true, Some(by)) if by != principal.id => {
            return Err(ApiError::bad_request("invalid_query", "mine=true and another requested_by contradict"));
        }
        (true, _) => Some(principal.id.clone()),
        (false, by) => by,
    };
    let filter = ListFilter {
        status: q.status.as_deref().map(ReleaseStatus::parse).transpose().map_err(bad_query)?,
        machine_id: q.machine_id.as_deref().map(MachineId::parse).transpose().map_err(bad_query)?,
        requested_by,
        before_seq,
        awaiting_decision: false,
        // One extra row tells whether another page exists.
        limit: limit + 1,
    };
    let mut rows = reading::list(&state, &principal, filter).await?;
    Ok(page(&state, &mut rows, limit))
}

/// `rows` fetched with one extra: the page and its cursor.
fn page(state: &AppState, rows: &mut Vec<(i64, Release)>, limit: i64) -> Json<Page> {
    let more = split_page(rows, limit);
    let next_cursor = if more { rows.last().map(|(seq, _)| seq.to_string()) } else { None };
    Json(Page { items: rows.drain(..).map(|(_, r)| view(state, r).0).collect(), next_cursor })
}

async fn show(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ReleaseView>, ApiError> {
    let id = release_id(&id)?;
    Ok(view(&state, reading::get(&state, &principal, id).await?))
}

async fn approve(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<OptionalComment>,
) -> Result<Json<ReleaseView>, ApiError> {
    let id = release_id(&id)?;
    let comment = body.parse()?;
    Ok(view(&state, service::approve(&state, &principal, id, comment).await?))
}

async fn reject(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<RequiredComment>,
) -> Result<Json<ReleaseView>, ApiError> {
    let id = release_id(&id)?;
    let comment = body.parse(&state)?;
    Ok(view(&state, service::reject(&state, &principal, id, comment).await?))
}

async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    OptionalJson(NoFields {}): OptionalJson<NoFields>,
) -> Result<Json<ReleaseView>, ApiError> {
    let id = release_id(&id)?;
    Ok(view(&state, service::cancel(&state, &principal, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceQuery {
    /// The size of an older checkpoint the auditor kept: adds a consistency proof from it.
    consistency_from: Option<u64>,
}

/// The release's evidence bundle (auditor role).
async fn evidence(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<EvidenceQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = release_id(&id)?;
    super::audit::require_auditor(&state, &principal)?;
    let log = super::proofs::signer(&state)?;
    let release = reading::get(&state, &principal, id).await?;
    let view = serde_json::to_value(view(&state, release).0).map_err(ApiError::internal)?;
    let bundle = crate::service::evidence::bundle(&state.db, &log, id, view, q.consistency_from).await?;
    Ok(Json(bundle))
}
