//! Release batches: many devices requested at once ([`request`]), decided as one
//! ([`approve`], [`reject`], [`cancel`]), and read here. Every device of a batch is an ordinary
//! release under its own rule; the batch only groups them.

mod decide;
mod request;

pub(crate) use decide::{Decided, approve, cancel, reject};
pub(crate) use request::{NewBatch, Target, request};

use super::expiry::expire_in_tx;
use super::reading::require_reader;
use crate::auth::Principal;
use crate::db;
use crate::domain::{Batch, BatchId, Release};
use crate::error::ApiError;
use crate::state::AppState;
use std::collections::BTreeMap;

/// A batch and its releases as they stand.
#[derive(Debug)]
pub(crate) struct BatchState {
    pub batch: Batch,
    pub releases: Vec<Release>,
}

impl BatchState {
    /// How many of its releases are in each status.
    pub(crate) fn counts(&self) -> BTreeMap<String, u32> {
        let mut counts = BTreeMap::new();
        for r in &self.releases {
            *counts.entry(r.status.as_str().to_string()).or_insert(0) += 1;
        }
        counts
    }
}

/// A batch as listed: without its releases, with their counts by status.
#[derive(Debug)]
pub(crate) struct Listed {
    pub seq: i64,
    pub batch: Batch,
    pub counts: BTreeMap<String, u32>,
}

fn not_found(id: BatchId) -> ApiError {
    ApiError::not_found("batch_not_found", format!("no release batch with id {id}"))
}

/// Loads batch `id` and its releases in `conn` (404 `batch_not_found`).
async fn load(conn: &mut crate::db::Conn, id: BatchId) -> Result<BatchState, ApiError> {
    let batch = db::batches::get(&mut *conn, id).await?.ok_or_else(|| not_found(id))?;
    let releases = db::releases::of_batch(conn, id).await?;
    Ok(BatchState { batch, releases })
}

/// One batch, for the readers of releases and for its requester (anyone else: 403, whether or
/// not it exists). Its pending releases past their expiry are marked expired first.
pub(crate) async fn get(state: &AppState, p: &Principal, id: BatchId) -> Result<BatchState, ApiError> {
    let now = state.clock.now();
    let reader = require_reader(state, p);
    let found = {
        let mut conn = state.db.reader().await?;
        match load(&mut conn, id).await {
            Ok(b) => Some(b),
            Err(e) if e.code == "batch_not_found" => None,
            Err(e) => return Err(e),
        }
    };
    // Exact ids, as for releases: reading is not a separation-of-duties check.
    let found = match (found, reader) {
        (Some(b), Ok(())) => b,
        (Some(b), Err(_)) if b.batch.requested_by == p.id => b,
        (_, Err(e)) => return Err(e),
        (None, Ok(())) => return Err(not_found(id)),
    };
    if !found.releases.iter().any(|r| r.is_past_expiry(now)) {
        return Ok(found);
    }
    let mut tx = state.db.begin().await?;
    for r in found.releases.iter().filter(|r| r.is_past_expiry(now)) {
        expire_in_tx(&mut tx, now, r.id, &r.machine_id, r.expires_at).await?;
    }
    let found = load(&mut tx, id).await?;
    tx.commit().await?;
    Ok(found)
}

/// Batches newest first (older than `before_seq` when given), at most `limit`; a caller who
/// reads no releases sees only the batches they requested. Expired releases are swept first
/// so no count is stale.
pub(crate) async fn list(
    state: &AppState,
    p: &Principal,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<Listed>, ApiError> {
    let only = match require_reader(state, p) {
        Ok(()) => None,
        Err(_) => Some(p.id.as_str()),
    };
    super::expiry::expire_due(&state.db, state.clock.now()).await?;
    let mut conn = state.db.reader().await?;
    let batches = db::batches::list(&mut conn, only, before_seq, limit).await?;
    let mut counts = db::batches::counts(&mut conn, batches.iter().map(|(_, b)| b.id)).await?;
    Ok(batches
        .into_iter()
        .map(|(seq, batch)| {
            let counts = counts.remove(&batch.id.to_string()).unwrap_or_default();
            Listed { seq, batch, counts }
        })
        .collect())
}
