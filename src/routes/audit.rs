//! `/api/v1/audit`: read and verify the audit chain (auditor role).

use super::extract::{ApiQuery, page_limit, release_id, split_page};
use crate::audit::VerifyReport;
use crate::auth::Principal;
use crate::db;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::AuditEntryView;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/", get(list)).route("/verify", get(verify))
}

pub(super) fn require_auditor(state: &AppState, p: &Principal) -> Result<(), ApiError> {
    let role = &state.settings.auth.auditor_role;
    if p.has_role(role) { Ok(()) } else { Err(ApiError::missing_role(role)) }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    after_seq: Option<i64>,
    limit: Option<i64>,
    release_id: Option<String>,
}

#[derive(Serialize)]
struct Page {
    items: Vec<AuditEntryView>,
    /// Pass as `after_seq` for the next page; null when this page is the last.
    next_after_seq: Option<i64>,
}

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

async fn verify(State(state): State<AppState>, principal: Principal) -> Result<Json<VerifyReport>, ApiError> {
    require_auditor(&state, &principal)?;
    Ok(Json(crate::audit::verify_db(&state.db).await?))
}
