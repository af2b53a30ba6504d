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
use crate::service::batch::{self as service, BatchState, Decided, Listed, NewBatch, Target};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// The most values a selector may list under each key.
const MAX_SELECTOR_VALUES: usize = 100;
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 100;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/", post(create).get(list))
        .route("/{id}", get(show))
        .route("/{id}/approve", post(approve))
        .route("/{id}/reject", post(reject))
        .route("/{id}/cancel", post(cancel))
}

/// A release of a batch, as the batch shows it.
#[derive(Serialize)]
struct MemberView {
    id: String,
    machine_id: String,
    status: &'static str,
}

/// What every view of a batch starts with.
#[derive(Serialize)]
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

#[derive(Serialize)]
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
#[derive(Serialize)]
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectorBody {
    #[serde(default)]
    rbac_groups: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
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

async fn show(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<BatchView>, ApiError> {
    let id = batch_id(&id)?;
    Ok(Json(service::get(&state, &principal, id).await?.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// A batch as listed: its releases only counted.
#[derive(Serialize)]
struct ListedView {
    #[serde(flatten)]
    head: BatchHead,
    refused_count: usize,
}

#[derive(Serialize)]
struct Page {
    items: Vec<ListedView>,
    next_cursor: Option<String>,
}

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

async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    OptionalJson(NoFields {}): OptionalJson<NoFields>,
) -> Result<Json<DecidedView>, ApiError> {
    let id = batch_id(&id)?;
    Ok(Json(service::cancel(&state, &principal, id).await?.into()))
}
