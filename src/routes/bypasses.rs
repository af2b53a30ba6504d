//! `/api/v1/bypasses`: devices released outside dualkey, for auditors.

use super::decisions::OptionalComment;
use super::extract::{ApiPath, ApiQuery, OptionalJson, page_limit};
use crate::auth::Principal;
use crate::clock::Timestamp;
use crate::db::fleet::BypassRow;
use crate::error::ApiError;
use crate::routes::openapi::ErrorBody;
use crate::service::bypass as service;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(acknowledge))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// How many, newest first.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// A bypass as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Bypass)]
struct BypassView {
    id: String,
    machine_id: String,
    mde_action_id: String,
    requestor: Option<String>,
    requestor_comment: Option<String>,
    /// MDE's `creationDateTimeUtc` of the bypassing action.
    created: Option<String>,
    mde_action_status: Option<String>,
    detected_at: Timestamp,
    /// `record` or `reisolate`: `[policy] on_bypass` when it was found.
    response: String,
    reisolation: Option<Reisolation>,
    acknowledged_at: Option<Timestamp>,
    acknowledged_by: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Reisolation {
    /// `pending`, `reisolated`, or `ended` (no Isolate was made: `outcome` says why).
    status: &'static str,
    mde_action_id: Option<String>,
    attempts: i64,
    next_attempt_at: Option<Timestamp>,
    finished_at: Option<Timestamp>,
    outcome: Option<String>,
}

impl From<BypassRow> for BypassView {
    fn from(b: BypassRow) -> Self {
        let reisolation = (b.response == "reisolate").then(|| Reisolation {
            status: match (&b.reisolation_finished_at, &b.reisolation_action_id) {
                (None, _) => "pending",
                (Some(_), Some(_)) => "reisolated",
                (Some(_), None) => "ended",
            },
            mde_action_id: b.reisolation_action_id.clone(),
            attempts: b.reisolation_attempts,
            next_attempt_at: b.reisolation_due_at,
            finished_at: b.reisolation_finished_at,
            outcome: b.reisolation_outcome.clone(),
        });
        Self {
            id: b.id,
            machine_id: b.machine_id,
            mde_action_id: b.mde_action_id,
            requestor: b.requestor,
            requestor_comment: b.requestor_comment,
            created: b.action_created,
            mde_action_status: b.action_status,
            detected_at: b.detected_at,
            response: b.response,
            reisolation,
            acknowledged_at: b.acknowledged_at,
            acknowledged_by: b.acknowledged_by,
        }
    }
}

/// Bypasses, newest first.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = BypassPage)]
struct Page {
    items: Vec<BypassView>,
}

/// Devices released outside dualkey, newest first (auditor role).
#[utoipa::path(
    get,
    path = "/",
    operation_id = "list_bypasses",
    tag = "bypasses",
    params(ListQuery),
    responses((status = 200, body = Page), (status = 403, description = "`missing_role` (auditor role)", body = ErrorBody))
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Page>, ApiError> {
    let limit = page_limit(q.limit, 100, 1000)?;
    let rows = service::list(&state, &principal, limit as u32).await?;
    Ok(Json(Page { items: rows.into_iter().map(BypassView::from).collect() }))
}

/// Mark a bypass seen (auditor role).
#[utoipa::path(
    post,
    path = "/{id}/acknowledge",
    operation_id = "acknowledge_bypass",
    tag = "bypasses",
    params(("id" = String, Path, description = "The bypass id")),
    request_body(content = Option<OptionalComment>, description = "Optional; may be left out (an empty body)"),
    responses(
        (status = 200, body = BypassView),
        (status = 403, description = "`missing_role` (auditor role)", body = ErrorBody),
        (status = 404, description = "`bypass_not_found`", body = ErrorBody),
        (status = 409, description = "`already_acknowledged`", body = ErrorBody),
        (status = 422, description = "`invalid_comment`", body = ErrorBody),
    )
)]
async fn acknowledge(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<OptionalComment>,
) -> Result<Json<BypassView>, ApiError> {
    let comment = body.parse()?;
    Ok(Json(service::acknowledge(&state, &principal, &id, comment).await?.into()))
}
