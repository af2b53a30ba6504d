//! `/api/v1/releases`: request, read, approve, reject, cancel.

use super::decisions::{NoFields, OptionalComment, RequiredComment};
use super::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson, cursor, page_limit, release_id, split_page};
use crate::auth::Principal;
use crate::db::releases::ListFilter;
use crate::domain::{Comment, MachineId, Release, ReleaseStatus, Ticket};
use crate::error::ApiError;
use crate::routes::openapi::ErrorBody;
use crate::service::reading;
use crate::service::releases as service;
use crate::service::request::{NewRequest, request};
use crate::state::AppState;
use crate::views::ReleaseView;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(show))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(cancel))
        .routes(routes!(evidence))
}

/// The release as the API shows it.
fn view(state: &AppState, r: Release) -> Json<ReleaseView> {
    Json(ReleaseView::new(r, &state.settings.auth.approver_role))
}

/// A release request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// MDE's machine id: 40 hexadecimal characters (stored lower-case).
    #[schema(pattern = "^[0-9a-fA-F]{40}$")]
    machine_id: String,
    /// Why: at least `policy.min_comment_len` visible characters, at most 1000, no control,
    /// format or text-direction characters (trimmed).
    comment: String,
    /// A change or incident reference: 1 to 128 visible characters without spaces.
    #[serde(default)]
    ticket: Option<String>,
    /// Release at once under the break-glass role; a distinct approver ratifies it later.
    #[serde(default)]
    break_glass: bool,
}

/// Request a release (requester role; break-glass role with `break_glass`). dualkey reads the
/// device from MDE first, then applies the policy.
#[utoipa::path(
    post,
    path = "/",
    operation_id = "create_release",
    tag = "releases",
    request_body = CreateBody,
    responses(
        (status = 201, description = "Requested", body = ReleaseView,
            headers(("Location" = String, description = "`/api/v1/releases/{id}`"))),
        (status = 403, description = "`missing_role`", body = ErrorBody),
        (status = 409, description = "`release_already_open` (with `open_release_id`)", body = ErrorBody),
        (status = 422, description = "`invalid_machine_id`, `invalid_comment`, `invalid_ticket`, `unknown_machine`, \
            `device_not_isolated`, `denied_by_policy` (with `rule`), `ticket_required`, `break_glass_disabled`", body = ErrorBody),
        (status = 429, description = "`request_rate_exceeded` (with `Retry-After`)", body = ErrorBody),
        (status = 503, description = "`mde_unavailable`, `mde_not_configured`, `mde_busy` (with `Retry-After`): nothing stored", body = ErrorBody),
    )
)]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only releases in this status.
    #[param(value_type = Option<ReleaseStatusName>, inline)]
    status: Option<String>,
    /// Only releases of this machine.
    #[param(pattern = "^[0-9a-fA-F]{40}$")]
    machine_id: Option<String>,
    /// Only releases requested by this principal.
    requested_by: Option<String>,
    /// Only releases the caller may decide now (combines only with `limit` and `cursor`).
    #[serde(default)]
    waiting_for_me: bool,
    /// Only releases the caller asked for.
    #[serde(default)]
    mine: bool,
    /// Page size.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// A `next_cursor` from the page before.
    #[param(value_type = Option<i64>, minimum = 1)]
    cursor: Option<String>,
}

/// A status name: `pending`, `approved`, `dispatching`, `dispatched`, `succeeded`, `failed`,
/// `rejected`, `cancelled`, `expired` or `reisolated`.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum ReleaseStatusName {
    Pending,
    Approved,
    Dispatching,
    Dispatched,
    Succeeded,
    Failed,
    Rejected,
    Cancelled,
    Expired,
    Reisolated,
}

/// A page of releases, newest first.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ReleasePage)]
struct Page {
    items: Vec<ReleaseView>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// List releases (any of the three roles; anyone else: their own requests).
#[utoipa::path(
    get,
    path = "/",
    operation_id = "list_releases",
    tag = "releases",
    params(ListQuery),
    responses(
        (status = 200, body = Page),
        (status = 400, description = "`invalid_query` (also for contradicting filters), `invalid_cursor`, `invalid_status`, \
            `invalid_machine_id`", body = ErrorBody),
        (status = 403, description = "`missing_role` (another `requested_by` without a reading role)", body = ErrorBody),
    )
)]
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

/// Read a release.
#[utoipa::path(
    get,
    path = "/{id}",
    operation_id = "get_release",
    tag = "releases",
    params(("id" = uuid::Uuid, Path, description = "The release id")),
    responses(
        (status = 200, body = ReleaseView),
        (status = 400, description = "`invalid_release_id`", body = ErrorBody),
        (status = 403, description = "`missing_role`", body = ErrorBody),
        (status = 404, description = "`release_not_found`", body = ErrorBody),
    )
)]
async fn show(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ReleaseView>, ApiError> {
    let id = release_id(&id)?;
    Ok(view(&state, reading::get(&state, &principal, id).await?))
}

/// Approve a pending release (a role one of its slots asks for), or ratify a break-glass one.
#[utoipa::path(
    post,
    path = "/{id}/approve",
    operation_id = "approve_release",
    tag = "releases",
    params(("id" = uuid::Uuid, Path, description = "The release id")),
    request_body(content = Option<OptionalComment>, description = "Optional; may be left out (an empty body)"),
    responses(
        (status = 200, body = ReleaseView),
        (status = 400, description = "`invalid_release_id`", body = ErrorBody),
        (status = 403, description = "`missing_role`, `self_approval_forbidden`, `isolator_excluded`", body = ErrorBody),
        (status = 404, description = "`release_not_found`", body = ErrorBody),
        (status = 409, description = "`release_not_pending` (with `status`), `release_expired`, `already_approved`, \
            `no_open_slot`, `ratification_too_late`, `already_ratified`", body = ErrorBody),
        (status = 422, description = "`invalid_comment`", body = ErrorBody),
        (status = 429, description = "`approval_rate_exceeded` (with `Retry-After`)", body = ErrorBody),
    )
)]
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

/// Reject a pending release (approver role), saying why.
#[utoipa::path(
    post,
    path = "/{id}/reject",
    operation_id = "reject_release",
    tag = "releases",
    params(("id" = uuid::Uuid, Path, description = "The release id")),
    request_body = RequiredComment,
    responses(
        (status = 200, body = ReleaseView),
        (status = 400, description = "`invalid_release_id`", body = ErrorBody),
        (status = 403, description = "`missing_role`, `self_rejection_forbidden`", body = ErrorBody),
        (status = 404, description = "`release_not_found`", body = ErrorBody),
        (status = 409, description = "`release_not_pending` (with `status`), `release_expired`", body = ErrorBody),
        (status = 422, description = "`comment_required`, `invalid_comment`", body = ErrorBody),
    )
)]
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

/// Cancel a pending release (its requester only).
#[utoipa::path(
    post,
    path = "/{id}/cancel",
    operation_id = "cancel_release",
    tag = "releases",
    params(("id" = uuid::Uuid, Path, description = "The release id")),
    request_body(content = Option<NoFields>, description = "Optional: nothing, or an empty JSON object"),
    responses(
        (status = 200, body = ReleaseView),
        (status = 400, description = "`invalid_release_id`", body = ErrorBody),
        (status = 403, description = "`not_requester`, `missing_role`", body = ErrorBody),
        (status = 404, description = "`release_not_found`", body = ErrorBody),
        (status = 409, description = "`release_not_pending` (with `status`), `release_expired`", body = ErrorBody),
    )
)]
async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    OptionalJson(NoFields {}): OptionalJson<NoFields>,
) -> Result<Json<ReleaseView>, ApiError> {
    let id = release_id(&id)?;
    Ok(view(&state, service::cancel(&state, &principal, id).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EvidenceQuery {
    /// The size of an older checkpoint the auditor kept: adds a consistency proof from it.
    consistency_from: Option<u64>,
}

/// The release's evidence bundle (auditor role): `format`, `release`, `entries`, `proofs`,
/// `checkpoint`, `policy`, and `consistency` with `consistency_from` (see docs/api.md).
#[utoipa::path(
    get,
    path = "/{id}/evidence",
    operation_id = "get_release_evidence",
    tag = "audit",
    params(("id" = uuid::Uuid, Path, description = "The release id"), EvidenceQuery),
    responses(
        (status = 200, description = "The bundle (`dualkey-evidence/1`)", body = serde_json::Value),
        (status = 400, description = "`invalid_release_id`", body = ErrorBody),
        (status = 403, description = "`missing_role`", body = ErrorBody),
        (status = 404, description = "`release_not_found`, `log_unsigned`", body = ErrorBody),
        (status = 422, description = "`consistency_from_beyond_log` (with `log_size`)", body = ErrorBody),
    )
)]
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
