//! `/api/v1/audit/checkpoint`, `/proof/*` and `/verifier-key`: the signed Merkle log, for
//! auditors and their tools (formats: C2SP tlog-checkpoint, RFC 9162 §2.1.3 and §2.1.4).

use super::audit::require_auditor;
use super::extract::ApiQuery;
use crate::audit::signing::LogSigner;
use crate::audit::tree;
use crate::auth::Principal;
use crate::db;
use crate::error::ApiError;
use crate::routes::openapi::ErrorBody;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(checkpoint))
        .routes(routes!(inclusion))
        .routes(routes!(consistency))
        .routes(routes!(verifier_key))
        .routes(routes!(export))
}

/// The log's signer, or 404 `log_unsigned`.
pub(super) fn signer(state: &AppState) -> Result<Arc<LogSigner>, ApiError> {
    state.db.log().ok_or_else(|| {
        ApiError::not_found(
            "log_unsigned",
            "this dualkey has no [audit] signing_key_file: its log has no checkpoints and no proofs",
        )
    })
}

fn text(body: String) -> Response {
    ([(CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// The tree's size now, and 422 `size_beyond_log` when `size` is past it.
pub(super) async fn within_log(conn: &mut crate::db::Conn, size: u64) -> Result<u64, ApiError> {
    let have = db::tree::size(conn).await?;
    if size > have {
        return Err(ApiError::unprocessable(
            "size_beyond_log",
            format!("the log has {have} entries; a tree of {size} does not exist (yet)"),
        )
        .with("log_size", have));
    }
    Ok(have)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct CheckpointQuery {
    /// The stored checkpoint of exactly this many entries (default: the latest).
    size: Option<u64>,
}

/// A signed checkpoint (C2SP tlog-checkpoint note) of the log (auditor role).
#[utoipa::path(
    get,
    path = "/checkpoint",
    operation_id = "get_checkpoint",
    tag = "audit",
    params(CheckpointQuery),
    responses(
        (status = 200, description = "The note", content_type = "text/plain", body = String),
        (status = 403, description = "`missing_role` (auditor role)", body = ErrorBody),
        (status = 404, description = "`log_unsigned`, `checkpoint_not_found`", body = ErrorBody),
    )
)]
async fn checkpoint(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<CheckpointQuery>,
) -> Result<Response, ApiError> {
    require_auditor(&state, &principal)?;
    signer(&state)?;
    let mut conn = state.db.reader().await?;
    let row = match q.size {
        Some(size) => db::checkpoints::at_size(&mut conn, size.min(i64::MAX as u64) as i64).await?,
        None => db::checkpoints::latest(&mut conn).await?,
    };
    let row = row.ok_or_else(|| match q.size {
        Some(size) => ApiError::not_found("checkpoint_not_found", format!("no checkpoint of size {size} is stored")),
        None => ApiError::not_found("checkpoint_not_found", "no checkpoint has been written yet"),
    })?;
    Ok(text(row.note))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct InclusionQuery {
    /// The entry (1 ≤ seq ≤ size).
    seq: u64,
    /// The tree size the proof is against.
    size: u64,
}

/// An RFC 9162 §2.1.3 inclusion proof, hashes in base64.
#[derive(Serialize, utoipa::ToSchema)]
struct InclusionProof {
    /// The leaf index: `seq` − 1.
    index: u64,
    size: u64,
    hashes: Vec<String>,
}

/// The inclusion proof of entry `seq` in the tree of `size` entries (auditor role).
#[utoipa::path(
    get,
    path = "/proof/inclusion",
    operation_id = "get_inclusion_proof",
    tag = "audit",
    params(InclusionQuery),
    responses(
        (status = 200, body = InclusionProof),
        (status = 400, description = "`invalid_query` (unless 1 ≤ seq ≤ size)", body = ErrorBody),
        (status = 403, description = "`missing_role` (auditor role)", body = ErrorBody),
        (status = 404, description = "`log_unsigned` (no `[audit] signing_key_file`)", body = ErrorBody),
        (status = 422, description = "`size_beyond_log` (with `log_size`)", body = ErrorBody),
    )
)]
async fn inclusion(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<InclusionQuery>,
) -> Result<Json<InclusionProof>, ApiError> {
    require_auditor(&state, &principal)?;
    signer(&state)?;
    if q.seq == 0 || q.seq > q.size {
        return Err(ApiError::bad_request("invalid_query", "seq must be between 1 and size"));
    }
    let mut conn = state.db.reader().await?;
    within_log(&mut conn, q.size).await?;
    let hashes = tree::inclusion(&mut conn, q.seq - 1, q.size).await?;
    Ok(Json(InclusionProof { index: q.seq - 1, size: q.size, hashes: tree::to_b64(&hashes) }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ConsistencyQuery {
    /// The older tree size (1 ≤ from ≤ to).
    from: u64,
    /// The newer tree size.
    to: u64,
}

/// An RFC 9162 §2.1.4 consistency proof, hashes in base64.
#[derive(Serialize, utoipa::ToSchema)]
struct ConsistencyProof {
    from: u64,
    size: u64,
    hashes: Vec<String>,
}

/// The consistency proof from the tree of `from` entries to that of `to` (auditor role).
#[utoipa::path(
    get,
    path = "/proof/consistency",
    operation_id = "get_consistency_proof",
    tag = "audit",
    params(ConsistencyQuery),
    responses(
        (status = 200, body = ConsistencyProof),
        (status = 400, description = "`invalid_query` (unless 1 ≤ from ≤ to)", body = ErrorBody),
        (status = 403, description = "`missing_role` (auditor role)", body = ErrorBody),
        (status = 404, description = "`log_unsigned` (no `[audit] signing_key_file`)", body = ErrorBody),
        (status = 422, description = "`size_beyond_log` (with `log_size`)", body = ErrorBody),
    )
)]
async fn consistency(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> Result<Json<ConsistencyProof>, ApiError> {
    require_auditor(&state, &principal)?;
    signer(&state)?;
    if q.from == 0 || q.from > q.to {
        return Err(ApiError::bad_request("invalid_query", "from must be between 1 and to"));
    }
    let mut conn = state.db.reader().await?;
    within_log(&mut conn, q.to).await?;
    let hashes = tree::consistency(&mut conn, q.from, q.to).await?;
    Ok(Json(ConsistencyProof { from: q.from, size: q.to, hashes: tree::to_b64(&hashes) }))
}

/// The log's verifier key (a C2SP signed-note verifier key). Public: auditors check dualkey
/// against it, and it says nothing secret.
#[utoipa::path(
    get,
    path = "/verifier-key",
    operation_id = "get_verifier_key",
    tag = "audit",
    security(()),
    responses(
        (status = 200, description = "The key, one line", content_type = "text/plain", body = String),
        (status = 404, description = "`log_unsigned` (no `[audit] signing_key_file`)", body = ErrorBody),
    )
)]
async fn verifier_key(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(text(format!("{}\n", signer(&state)?.verifier_key())))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ExportQuery {
    /// Entries written at or after this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime)]
    from: Option<String>,
    /// Entries written before this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime)]
    to: Option<String>,
    /// The size of a checkpoint you kept: adds a consistency proof from it.
    consistency_from: Option<u64>,
}

/// An RFC 3339 time from a query, or 400 `invalid_query` naming the parameter.
fn query_time(name: &str, text: Option<&str>) -> Result<Option<crate::clock::Timestamp>, ApiError> {
    text.map(|t| {
        crate::clock::Timestamp::parse_rfc3339(t)
            .ok_or_else(|| ApiError::bad_request("invalid_query", format!("{name} must be an RFC 3339 time")))
    })
    .transpose()
}

/// JSON Lines of the trail's leaf lines and a trailer (see `service::export`), streamed
/// (auditor role).
#[utoipa::path(
    get,
    path = "/export",
    operation_id = "export_audit_trail",
    tag = "audit",
    params(ExportQuery),
    responses(
        (status = 200, description = "One leaf line per entry, then one trailer line", content_type = "application/jsonl", body = String),
        (status = 400, description = "`invalid_query` (a malformed time)", body = ErrorBody),
        (status = 403, description = "`missing_role` (auditor role)", body = ErrorBody),
        (status = 404, description = "`log_unsigned`, `log_empty`, `no_entries_in_range`", body = ErrorBody),
        (status = 422, description = "`consistency_from_beyond_export`", body = ErrorBody),
    )
)]
async fn export(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    require_auditor(&state, &principal)?;
    let log = signer(&state)?;
    let range = crate::service::export::ExportRange {
        from: query_time("from", q.from.as_deref())?,
        to: query_time("to", q.to.as_deref())?,
        consistency_from: q.consistency_from,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(256);
    let db = state.db.clone();
    let task = tokio::spawn(async move { crate::service::export::export(&db, &log, range, tx).await });
    // Refusals (an empty log, an impossible consistency proof) come before the first line.
    let Some(first) = rx.recv().await else {
        task.await.map_err(ApiError::internal)??;
        return Err(ApiError::internal(anyhow::anyhow!("the export ended without a trailer")));
    };
    tokio::spawn(async move {
        if let Ok(Err(e)) = task.await {
            tracing::error!(error = %e.message, "an audit export stopped before its trailer");
        }
    });
    let lines = line_stream(first, rx);
    let body = axum::body::Body::from_stream(lines);
    Ok(([(CONTENT_TYPE, "application/jsonl; charset=utf-8")], body).into_response())
}

fn line_stream(
    first: String,
    rx: tokio::sync::mpsc::Receiver<String>,
) -> impl tokio_stream::Stream<Item = Result<String, std::convert::Infallible>> {
    use tokio_stream::StreamExt;
    tokio_stream::once(first).chain(tokio_stream::wrappers::ReceiverStream::new(rx)).map(|line| Ok(format!("{line}\n")))
}
