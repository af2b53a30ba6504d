//! `/api/v1/release-batches`: request many releases at once, read a batch, and approve, reject
//! or cancel all of it.

use super::decisions::{NoFields, OptionalComment, RequiredComment};
use super::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson, cursor, page_limit, split_page};
use crate::auth::Principal;
use crate::clock::Timestamp;
use crate::domain::{
    BatchId, BatchSelector, Comment, MAX_BATCH_MACHINES, MachineId, Outcome, Refused, Ticket, is_hidden_control,
};
use crate::error::ApiError;
use crate::routes::openapi::ErrorBody;
use crate::service::batch::{self as service, BatchState, Decided, Listed, NewBatch, Target};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The most values a selector may list under each key.
const MAX_SELECTOR_VALUES: usize = 100;
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 100;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(show))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(cancel))
}

/// A release of a batch, as the batch shows it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = BatchMember)]
struct MemberView {
    id: String,
    machine_id: String,
    status: &'static str,
}

/// What every view of a batch starts with.
#[derive(Serialize, utoipa::ToSchema)]
struct BatchHead {
    id: String,
    requested_by: String,
    requested_at: Timestamp,
    comment: String,
    ticket: Option<String>,
    /// `null` for a batch of listed machine ids.
    selector: Option<BatchSelector>,
    /// Its releases by current status.
    counts: BTreeMap<String, u32>,
}

impl BatchHead {
    fn new(b: &crate::domain::Batch, counts: BTreeMap<String, u32>) -> Self {
        Self {
            id: b.id.to_string(),
            requested_by: b.requested_by.clone(),
            requested_at: b.requested_at,
            comment: b.comment.clone(),
            ticket: b.ticket.clone(),
            selector: b.selector.clone(),
            counts,
        }
    }
}

/// A release batch and its releases.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Batch)]
struct BatchView {
    #[serde(flatten)]
    head: BatchHead,
    releases: Vec<MemberView>,
    refused: Vec<Refused>,
}

impl From<BatchState> for BatchView {
    fn from(s: BatchState) -> Self {
        let head = BatchHead::new(&s.batch, s.counts());
        let releases = s
            .releases
            .into_iter()
            .map(|r| MemberView {
                id: r.id.to_string(),
                machine_id: r.machine_id.to_string(),
                status: r.status.as_str(),
            })
            .collect();
        Self { head, releases, refused: s.batch.refused }
    }
}

/// The batch after a decision, with what the decision did to each release.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = BatchDecided)]
struct DecidedView {
    #[serde(flatten)]
    batch: BatchView,
    results: Vec<Outcome>,
}

impl From<Decided> for DecidedView {
    fn from(d: Decided) -> Self {
        Self { batch: d.batch.into(), results: d.results }
    }
}

/// Every isolated device in one of `rbac_groups` or carrying one of `tags` (at most 100 each).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SelectorRequest)]
struct SelectorBody {
    #[serde(default)]
    rbac_groups: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
}

/// A batch request: exactly one of `machine_ids` and `selector`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BatchRequest)]
struct CreateBody {
    /// 1 to 1000 machine ids (duplicates collapse).
    #[serde(default)]
    machine_ids: Option<Vec<String>>,
    #[serde(default)]
    selector: Option<SelectorBody>,
    comment: String,
    #[serde(default)]
    ticket: Option<String>,
}

/// Exactly one of a list of machine ids and a selector (422 `invalid_target` otherwise).
fn target(machine_ids: Option<Vec<String>>, selector: Option<SelectorBody>) -> Result<Target, ApiError> {
    match (machine_ids, selector) {
        (Some(ids), None) => machines(&ids).map(Target::Machines),
        (None, Some(s)) => Ok(Target::Selector(selector_of(s)?)),
        (Some(_), Some(_)) => {
            Err(ApiError::unprocessable("invalid_target", "send either machine_ids or selector, not both"))
        }
        (None, None) => Err(ApiError::unprocessable(
            "invalid_target",
            "send machine_ids (a list of machine ids) or selector ({\"rbac_groups\": [...], \"tags\": [...]})",
        )),
    }
}

/// 1 to [`MAX_BATCH_MACHINES`] machine ids, each valid; duplicates collapse to the first.
fn machines(raw: &[String]) -> Result<Vec<MachineId>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::unprocessable("empty_batch", "machine_ids is empty: list at least one machine id"));
    }
    if raw.len() > MAX_BATCH_MACHINES {
        return Err(ApiError::unprocessable(
            "batch_too_large",
            format!("machine_ids lists {} ids; a batch holds at most {MAX_BATCH_MACHINES}", raw.len()),
        )
        .with("max", MAX_BATCH_MACHINES));
    }
    let mut seen = HashSet::new();
    let mut ids = Vec::with_capacity(raw.len());
    for (i, s) in raw.iter().enumerate() {
        let id = MachineId::parse(s).map_err(|e| {
            ApiError::unprocessable(e.code, format!("machine_ids[{i}]: {}", e.message)).with("index", i)
        })?;
        if seen.insert(id.clone()) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// A selector with at least one value, each non-blank and free of hidden characters (trimmed).
fn selector_of(s: SelectorBody) -> Result<BatchSelector, ApiError> {
    let values = |key: &str, raw: Vec<String>| -> Result<Vec<String>, ApiError> {
        if raw.len() > MAX_SELECTOR_VALUES {
            return Err(ApiError::unprocessable(
                "invalid_selector",
                format!("selector.{key} lists {} values; at most {MAX_SELECTOR_VALUES}", raw.len()),
            ));
        }
        raw.into_iter()
            .enumerate()
            .map(|(i, v)| {
                let v = v.trim();
                if v.is_empty() || v.chars().any(is_hidden_control) {
                    Err(ApiError::unprocessable(
                        "invalid_selector",
                        format!("selector.{key}[{i}] must be a visible name, without control or format characters"),
                    ))
                } else {
                    Ok(v.to_string())
                }
            })
            .collect()
    };
    let selector = BatchSelector { rbac_groups: values("rbac_groups", s.rbac_groups)?, tags: values("tags", s.tags)? };
    if selector.rbac_groups.is_empty() && selector.tags.is_empty() {
        return Err(ApiError::unprocessable(
            "empty_selector",
            "the selector names no value: list at least one of rbac_groups or tags",
        ));
    }
    Ok(selector)
}

/// Request a release for many devices at once (requester role): each device that can be taken
/// becomes an ordinary release naming the batch; the others are listed in `refused`.
#[utoipa::path(
    post,
    path = "/",
    operation_id = "create_batch",
    tag = "release-batches",
    request_body = CreateBody,
    responses(
        (status = 201, description = "Requested", body = BatchView,
            headers(("Location" = String, description = "`/api/v1/release-batches/{id}`"))),
        (status = 403, description = "`missing_role`", body = ErrorBody),
        (status = 422, description = "`invalid_target`, `empty_batch`, `empty_selector`, `invalid_selector`, \
            `batch_too_large` (with `max`), `invalid_machine_id` (with `index`), `invalid_comment`, `invalid_ticket`, \
            `ticket_required`, `nothing_to_release`", body = ErrorBody),
        (status = 429, description = "`request_rate_exceeded` (with `Retry-After`)", body = ErrorBody),
        (status = 503, description = "`mde_unavailable`, `mde_not_configured`, `mde_busy`: nothing stored", body = ErrorBody),
    )
)]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    // One policy snapshot checks the comment and decides every device.
    let policy = state.policy();
    let batch = NewBatch {
        target: target(body.machine_ids, body.selector)?,
        comment: Comment::parse(&body.comment, policy.min_comment_len() as usize)?,
        ticket: body.ticket.as_deref().map(Ticket::parse).transpose()?,
    };
    let stored = service::request(&state, &policy, &principal, batch).await?;
    let location = format!("/api/v1/release-batches/{}", stored.batch.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(BatchView::from(stored))))
}

/// A batch id from the path: 400 `invalid_batch_id` when malformed.
fn batch_id(raw: &str) -> Result<BatchId, ApiError> {
    BatchId::parse(raw).map_err(|e| ApiError::bad_request(e.code, e.message))
}

/// Read a batch.
#[utoipa::path(
    get,
    path = "/{id}",
    operation_id = "get_batch",
    tag = "release-batches",
    params(("id" = uuid::Uuid, Path, description = "The batch id")),
    responses(
        (status = 200, body = BatchView),
        (status = 400, description = "`invalid_batch_id`", body = ErrorBody),
        (status = 403, description = "`missing_role`", body = ErrorBody),
        (status = 404, description = "`batch_not_found`", body = ErrorBody),
    )
)]
async fn show(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<BatchView>, ApiError> {
    let id = batch_id(&id)?;
    Ok(Json(service::get(&state, &principal, id).await?.into()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Page size.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// A `next_cursor` from the page before.
    #[param(value_type = Option<i64>, minimum = 1)]
    cursor: Option<String>,
}

/// A batch as listed: its releases only counted.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = BatchListed)]
struct ListedView {
    #[serde(flatten)]
    head: BatchHead,
    refused_count: usize,
}

/// A page of batches, newest first.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = BatchPage)]
struct Page {
    items: Vec<ListedView>,
    next_cursor: Option<String>,
}

/// List batches, newest first.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "list_batches",
    tag = "release-batches",
    params(ListQuery),
    responses(
        (status = 200, body = Page),
        (status = 400, description = "`invalid_query`, `invalid_cursor`", body = ErrorBody),
        (status = 403, description = "`missing_role`", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Page>, ApiError> {
    let limit = page_limit(q.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let before_seq = cursor(q.cursor.as_deref())?;
    // One extra row tells whether another page exists.
    let mut rows = service::list(&state, &principal, before_seq, limit + 1).await?;
    let more = split_page(&mut rows, limit);
    let next_cursor = if more { rows.last().map(|l| l.seq.to_string()) } else { None };
    let items = rows
        .into_iter()
        .map(|Listed { batch: b, counts, .. }| ListedView {
            refused_count: b.refused.len(),
            head: BatchHead::new(&b, counts),
        })
        .collect();
    Ok(Json(Page { items, next_cursor }))
}

/// Approve every pending release of the batch the caller may approve; `results` says what
/// happened to each.
#[utoipa::path(
    post,
    path = "/{id}/approve",
    operation_id = "approve_batch",
    tag = "release-batches",
    params(("id" = uuid::Uuid, Path, description = "The batch id")),
    request_body(content = Option<OptionalComment>, description = "Optional; may be left out (an empty body)"),
    responses(
        (status = 200, body = DecidedView),
        (status = 400, description = "`invalid_batch_id`", body = ErrorBody),
        (status = 403, description = "`missing_role`", body = ErrorBody),
        (status = 404, description = "`batch_not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_comment`", body = ErrorBody),
        (status = 429, description = "`approval_rate_exceeded` (with `Retry-After`)", body = ErrorBody),
    )
)]
async fn approve(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<OptionalComment>,
) -> Result<Json<DecidedView>, ApiError> {
    let id = batch_id(&id)?;
    let comment = body.parse()?;
    Ok(Json(service::approve(&state, &principal, id, comment).await?.into()))
}

/// Reject every pending release of the batch, saying why.
#[utoipa::path(
    post,
    path = "/{id}/reject",
    operation_id = "reject_batch",
    tag = "release-batches",
    params(("id" = uuid::Uuid, Path, description = "The batch id")),
    request_body = RequiredComment,
    responses(
        (status = 200, body = DecidedView),
        (status = 400, description = "`invalid_batch_id`", body = ErrorBody),
        (status = 403, description = "`missing_role`", body = ErrorBody),
        (status = 404, description = "`batch_not_found`", body = ErrorBody),
        (status = 422, description = "`comment_required`, `invalid_comment`", body = ErrorBody),
    )
)]
async fn reject(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<RequiredComment>,
) -> Result<Json<DecidedView>, ApiError> {
    let id = batch_id(&id)?;
    let comment = body.parse(&state)?;
    Ok(Json(service::reject(&state, &principal, id, comment).await?.into()))
}

/// Cancel every pending release of the batch (its requester only).
#[utoipa::path(
    post,
    path = "/{id}/cancel",
    operation_id = "cancel_batch",
    tag = "release-batches",
    params(("id" = uuid::Uuid, Path, description = "The batch id")),
    request_body(content = Option<NoFields>, description = "Optional: nothing, or an empty JSON object"),
    responses(
        (status = 200, body = DecidedView),
        (status = 400, description = "`invalid_batch_id`", body = ErrorBody),
        (status = 403, description = "`not_requester`, `missing_role`", body = ErrorBody),
        (status = 404, description = "`batch_not_found`", body = ErrorBody),
    )
)]
async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    OptionalJson(NoFields {}): OptionalJson<NoFields>,
) -> Result<Json<DecidedView>, ApiError> {
    let id = batch_id(&id)?;
    Ok(Json(service::cancel(&state, &principal, id).await?.into()))
}
