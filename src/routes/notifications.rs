//! `/api/v1/notifications`: the outbox, for auditors: what was sent where, and what is stuck.

use super::extract::{ApiQuery, cursor, page_limit, split_page};
use crate::auth::Principal;
use crate::clock::Timestamp;
use crate::db;
use crate::error::ApiError;
use crate::routes::openapi::ErrorBody;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// A message's status.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum NotificationStatus {
    Pending,
    Delivered,
    Dead,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only messages in this status.
    #[param(value_type = Option<NotificationStatus>, inline)]
    status: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// A `next_cursor` from the page before.
    #[param(value_type = Option<i64>, minimum = 1)]
    cursor: Option<String>,
}

/// One message: never its URL or payload's secrets (it has none), only what happened to it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Notification)]
struct NotificationView {
    id: String,
    event: String,
    channel: String,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    created_at: Timestamp,
    delivered_at: Option<Timestamp>,
    finished_at: Option<Timestamp>,
    release_id: Option<String>,
}

/// A page of notifications, newest first.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = NotificationPage)]
struct Page {
    items: Vec<NotificationView>,
    next_cursor: Option<String>,
}

/// The notification outbox, newest first (auditor role).
#[utoipa::path(
    get,
    path = "/",
    operation_id = "list_notifications",
    tag = "notifications",
    params(ListQuery),
    responses(
        (status = 200, body = Page),
        (status = 400, description = "`invalid_query`, `invalid_status`, `invalid_cursor`", body = ErrorBody),
        (status = 403, description = "`missing_role` (auditor role)", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Page>, ApiError> {
    let role = &state.settings.auth.auditor_role;
    if !principal.has_role(role) {
        return Err(ApiError::missing_role(role));
    }
    let limit = page_limit(q.limit, 50, 200)?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s @ ("pending" | "delivered" | "dead")) => Some(s),
        Some(_) => return Err(ApiError::bad_request("invalid_status", "status must be pending, delivered or dead")),
    };
    let before = cursor(q.cursor.as_deref())?;
    let mut conn = state.db.reader().await?;
    let mut rows = db::outbox::list(&mut conn, status, before, limit + 1).await?;
    let more = split_page(&mut rows, limit);
    let next_cursor = if more { rows.last().map(|r| r.seq.to_string()) } else { None };
    let items = rows
        .into_iter()
        .map(|r| NotificationView {
            delivered_at: r.finished_at.filter(|_| r.status == "delivered"),
            id: r.id,
            event: r.event,
            channel: r.channel,
            status: r.status,
            attempts: r.attempts,
            last_error: r.last_error,
            created_at: r.created_at,
            finished_at: r.finished_at,
            release_id: r.release_id,
        })
        .collect();
    Ok(Json(Page { items, next_cursor }))
}
