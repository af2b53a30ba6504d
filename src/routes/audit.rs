//! `/api/v1/audit`: read and verify the audit chain (auditor role).

use super::extract::{ApiQuery, page_limit, release_id, split_page};
use crate::audit::VerifyReport;
use crate::auth::Principal;
use crate::db;
use crate::error::ApiError;
use crate::routes::openapi::ErrorBody;
use crate::state::AppState;
use crate::views::AuditEntryView;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(verify))
}

pub(super) fn require_auditor(state: &AppState, p: &Principal) -> Result<(), ApiError> {
    let role = &state.settings.auth.auditor_role;
    if p.has_role(role) { Ok(()) } else { Err(ApiError::missing_role(role)) }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Entries after this seq (a `next_after_seq` from the page before).
    #[param(minimum = 0)]
    after_seq: Option<i64>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Only entries about this release.
    #[param(value_type = Option<uuid::Uuid>)]
    release_id: Option<String>,
}

/// A page of audit entries, oldest first.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = AuditPage)]
struct Page {
    items: Vec<AuditEntryView>,
    /// Pass as `after_seq` for the next page; null when this page is the last.
    next_after_seq: Option<i64>,
}

/// Read the audit trail in `seq` order (auditor role).
#[utoipa::path(
    get,
    path = "/",
    operation_id = "list_audit_entries",
    tag = "audit",
    params(ListQuery),
    responses(
        (status = 200, body = Page),
        (status = 400, description = "`invalid_query`, `invalid_release_id`", body = ErrorBody),
        (status = 403, description = "`missing_role` (auditor role)", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Page>, ApiError> {
    require_auditor(&state, &principal)?;
    let limit = page_limit(q.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let after_seq = q.after_seq.unwrap_or(0);
    if after_seq < 0 {
        return Err(ApiError::bad_request("invalid_query", "after_seq must not be negative"));
    }
    let release_id = q.release_id.as_deref().map(release_id).transpose()?.map(|id| id.to_string());
    let mut conn = state.db.reader().await?;
    let mut rows = db::audit::list(&mut conn, after_seq, limit + 1, release_id.as_deref()).await?;
    let more = split_page(&mut rows, limit);
    let next_after_seq = if more { rows.last().map(|e| e.seq) } else { None };
    Ok(Json(Page { items: rows.into_iter().map(Into::into).collect(), next_after_seq }))
}

/// Check the whole chain (auditor role): `ok` true with the head, or where it breaks.
#[utoipa::path(
    get,
    path = "/verify",
    operation_id = "verify_audit_chain",
    tag = "audit",
    responses((status = 200, body = VerifyReport), (status = 403, description = "`missing_role` (auditor role)", body = ErrorBody))
)]
async fn verify(State(state): State<AppState>, principal: Principal) -> Result<Json<VerifyReport>, ApiError> {
    require_auditor(&state, &principal)?;
    Ok(Json(crate::audit::verify_db(&state.db).await?))
}
