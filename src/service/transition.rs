//! The one path for a change of a release's status. It checks the move against the state
//! machine (`domain::MOVES`), performs the fenced write (`WHERE id = ? AND status = <from>`,
//! plus `AND lease_owner = <claim>` for the worker's moves), and appends the move's audit entry,
//! all in the caller's transaction. Nothing else in dualkey writes a release's status.
//!
//! A move the table does not allow is [`TransitionError::Illegal`]; a fence that no longer
//! matches (someone else moved the release, or the worker's lease was taken over) is
//! [`TransitionError::Lost`], which the caller handles (the worker logs "lost the claim" and
//! drops its transaction).

use crate::audit::{self, Actor, AuditEvent, Subject};
use crate::clock::Timestamp;
use crate::db::{self, Tx};
use crate::domain::{Move, ReleaseId, ReleaseStatus};
use crate::error::ApiError;

pub(crate) use crate::db::transition::{At, Change, InsertError, NewRelease};

/// A move that happened. Later effects of a transition (an outbox message, a metric) attach to
/// this value, in [`after`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transitioned {
    pub id: ReleaseId,
    pub mv: Move,
    /// `None` when the move stored a new release.
    pub from: Option<ReleaseStatus>,
    pub to: ReleaseStatus,
    pub at: Timestamp,
    /// The sequence number of the move's audit entry.
    pub audit_seq: i64,
}

/// Why a move did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    /// The state machine has no such move from that status (a defect in the caller).
    #[error("release {id}: the state machine has no move `{mv}` from {}", from.map_or("a new release", |s| s.as_str()))]
    Illegal { id: ReleaseId, mv: Move, from: Option<ReleaseStatus> },
    /// A worker's move made without naming the claim it holds (a defect in the caller).
    #[error("release {id}: `{mv}` is the worker's move and must name its claim")]
    Unclaimed { id: ReleaseId, mv: Move },
    /// The release is no longer where the caller read it (or the caller's claim was taken
    /// over): nothing was written.
    #[error("release {id} is no longer {from} under the caller's claim; `{mv}` not applied")]
    Lost { id: ReleaseId, mv: Move, from: ReleaseStatus },
    /// A new release for a machine that already has an open one.
    #[error("machine already has an open release")]
    AlreadyOpen,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl TransitionError {
    pub fn is_lost(&self) -> bool {
        matches!(self, TransitionError::Lost { .. })
    }
}

impl From<TransitionError> for ApiError {
    fn from(e: TransitionError) -> Self {
        match e {
            TransitionError::AlreadyOpen => {
                ApiError::conflict("release_already_open", "this machine already has an open release")
            }
            TransitionError::Db(e) => e.into(),
            other => ApiError::internal(other),
        }
    }
}

/// Stores a new release (`request`: pending; `request_break_glass`: approved) and its audit
/// entry, by `actor`, at `r.requested_at`.
pub(crate) async fn create(
    tx: &mut Tx,
    r: &NewRelease<'_>,
    actor: Actor<'_>,
    event: &AuditEvent,
) -> Result<Transitioned, TransitionError> {
    let mv = r.mv();
    if !mv.allows_from(None) {
        return Err(TransitionError::Illegal { id: r.id, mv, from: None });
    }
    db::transition::insert(tx, r, mv.to()).await.map_err(|e| match e {
        InsertError::AlreadyOpen => TransitionError::AlreadyOpen,
        InsertError::Db(e) => TransitionError::Db(e),
    })?;
    let rid = r.id.to_string();
    let subject = Subject { release_id: Some(&rid), machine_id: Some(r.machine_id.as_str()) };
    let entry = audit::record(tx, r.requested_at, actor, subject, event).await?;
    after(tx, Transitioned { id: r.id, mv, from: None, to: mv.to(), at: r.requested_at, audit_seq: entry.seq }).await
}

/// Moves the release `at` names by `change`, fenced on what the caller read, and records
/// `event` by `actor`, at `now`.
pub(crate) async fn apply(
    tx: &mut Tx,
    at: &At<'_>,
    change: Change<'_>,
    actor: Actor<'_>,
    event: &AuditEvent,
    now: Timestamp,
) -> Result<Transitioned, TransitionError> {
    let mv = change.mv();
    if !mv.allows_from(Some(at.status)) {
        return Err(TransitionError::Illegal { id: at.id, mv, from: Some(at.status) });
    }
    if mv.needs_claim() && at.claim.is_none() {
        return Err(TransitionError::Unclaimed { id: at.id, mv });
    }
    if !db::transition::update(tx, at, &change, now).await? {
        return Err(TransitionError::Lost { id: at.id, mv, from: at.status });
    }
    let rid = at.id.to_string();
    let subject = Subject { release_id: Some(&rid), machine_id: Some(at.machine_id.as_str()) };
    let entry = audit::record(tx, now, actor, subject, event).await?;
    after(tx, Transitioned { id: at.id, mv, from: Some(at.status), to: mv.to(), at: now, audit_seq: entry.seq }).await
}

/// Where effects of every transition attach (inside the caller's transaction, before commit):
/// the notifications the move reports go to the outbox here, and its figures to the metrics.
async fn after(tx: &mut Tx, t: Transitioned) -> Result<Transitioned, TransitionError> {
    tracing::debug!(release_id = %t.id, mv = %t.mv, from = ?t.from, to = %t.to, "release moved");
    if let Some(event) = crate::notify::outbox::event_of(t.mv) {
        crate::notify::outbox::release_event(tx, event, t.id, t.at).await?;
    }
    // An approved release that ends: how long the release took once decided.
    let was_approved =
        matches!(t.from, Some(ReleaseStatus::Approved | ReleaseStatus::Dispatching | ReleaseStatus::Dispatched));
    if was_approved
        && !t.to.is_open()
        && let Some(approved_at) = db::metrics::approved_at(tx, t.id).await?
    {
        tx.observe(crate::metrics::Observation::Finished { approved_at, at: t.at });
    }
    Ok(t)
}

#[cfg(test)]
#[path = "transition_tests.rs"]
mod tests;
