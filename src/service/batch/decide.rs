//! Deciding a batch as one: approve, reject or cancel every release of it that is still
//! pending, each under its own rule and the same per-person checks as a single decision
//! ([`crate::decide`]), in one transaction with every audit entry. A release the decision
//! cannot apply to is listed with the code its single decision would be refused with.

use super::{BatchState, load};
use crate::audit::{self, Actor, AuditEvent, Subject};
use crate::auth::Principal;
use crate::clock::Timestamp;
use crate::db;
use crate::db::velocity::Counted;
use crate::decide::{self, ApprovalEffect, RefusalReason};
use crate::domain::{BatchId, Comment, Outcome, Release, ReleaseStatus};
use crate::error::ApiError;
use crate::rules::over_limit;
use crate::service::expiry::expire_in_tx;
use crate::service::releases::{Decision, apply_final, caller, record_approval, refusal_error};
use crate::service::transition::Change;
use crate::state::AppState;
use axum::http::StatusCode;

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

/// A batch after a decision, and what the decision did to each of its releases.
#[derive(Debug)]
pub(crate) struct Decided {
    pub batch: BatchState,
    pub results: Vec<Outcome>,
}

/// The decision and what it carries.
#[derive(Clone, Copy)]
enum Kind<'a> {
    Approve(Option<&'a Comment>),
    Reject(&'a Comment),
    Cancel,
}

impl Kind<'_> {
    fn decision(self) -> Decision {
        match self {
            Kind::Approve(_) => Decision::Approve,
            Kind::Reject(_) => Decision::Reject,
            Kind::Cancel => Decision::Cancel,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Approve(_) => "approve",
            Kind::Reject(_) => "reject",
            Kind::Cancel => "cancel",
        }
    }
}

/// Approves every pending release of batch `id` that `p` may approve (each approval counts
/// against the approval velocity guard; over it, nothing is approved: 429).
#[tracing::instrument(skip_all, fields(batch_id = %id, approver = %crate::logsafe::untrusted(&p.id)))]
pub(crate) async fn approve(
    state: &AppState,
    p: &Principal,
    id: BatchId,
    comment: Option<Comment>,
) -> Result<Decided, ApiError> {
    decide_batch(state, p, id, Kind::Approve(comment.as_ref())).await
}

/// Rejects every pending release of batch `id` that `p` may reject: final.
#[tracing::instrument(skip_all, fields(batch_id = %id, principal = %crate::logsafe::untrusted(&p.id)))]
pub(crate) async fn reject(
    state: &AppState,
    p: &Principal,
    id: BatchId,
    comment: Comment,
) -> Result<Decided, ApiError> {
    decide_batch(state, p, id, Kind::Reject(&comment)).await
}

/// Cancels every pending release of batch `id` at its requester's wish: final.
#[tracing::instrument(skip_all, fields(batch_id = %id, principal = %crate::logsafe::untrusted(&p.id)))]
pub(crate) async fn cancel(state: &AppState, p: &Principal, id: BatchId) -> Result<Decided, ApiError> {
    decide_batch(state, p, id, Kind::Cancel).await
}

/// Whether `p` may take this decision on the batch at all: approving and rejecting need the
/// approver role or a role a slot of one of its releases asks for; cancelling, being its
/// requester (exact id, as for a single cancel).
fn gate(state: &AppState, p: &Principal, b: &BatchState, kind: Kind<'_>) -> Result<(), ApiError> {
    let approver_role = &state.settings.auth.approver_role;
    match kind {
        Kind::Cancel if p.id != b.batch.requested_by => {
            Err(ApiError::forbidden("not_requester", "only the requester can cancel a batch"))
        }
        Kind::Cancel => Ok(()),
        _ if p.has_role(approver_role) => Ok(()),
        _ if b.releases.iter().any(|r| decide::slots_of(r, approver_role).iter().any(|s| p.has_role(&s.role))) => {
            Ok(())
        }
        _ => Err(ApiError::missing_role(approver_role)),
    }
}

/// A decision the pure checks allowed on one release, with what applying it needs.
enum Allowed<'a> {
    Approve(Option<&'a Comment>, ApprovalEffect),
    Reject(&'a Comment),
    Cancel,
}

/// What the pure decision says of `r`: allowed, or refused with the single decision's reason.
fn check<'a>(
    state: &AppState,
    p: &Principal,
    r: &Release,
    kind: Kind<'a>,
    now: Timestamp,
) -> Result<Allowed<'a>, RefusalReason> {
    let approver_role = &state.settings.auth.approver_role;
    match kind {
        Kind::Approve(comment) => {
            decide::approval(r, caller(p), approver_role, now).map(|e| Allowed::Approve(comment, e))
        }
        Kind::Reject(comment) => decide::rejection(r, caller(p), approver_role, now).map(|()| Allowed::Reject(comment)),
        Kind::Cancel => decide::cancellation(r, &p.id, now).map(|()| Allowed::Cancel),
    }
}

/// Records one audit entry about the batch (no release, no machine).
async fn record(tx: &mut db::Tx, now: Timestamp, p: &Principal, event: &AuditEvent) -> Result<(), sqlx::Error> {
    audit::record(tx, now, Actor::Principal(&p.id), Subject::default(), event).await.map(|_| ())
}

/// Commits a decision refused whole, with its one audit entry (and the expiries found), and
/// returns its error.
async fn refuse_whole(
    mut tx: db::Tx,
    now: Timestamp,
    p: &Principal,
    batch_id: BatchId,
    kind: Kind<'_>,
    err: ApiError,
    results: Vec<Outcome>,
) -> ApiError {
    let event = AuditEvent::BatchDecisionRefused {
        batch_id: batch_id.to_string(),
        decision: kind.name().into(),
        reason: err.code.into(),
        results,
    };
    let result: Result<(), sqlx::Error> = async {
        record(&mut tx, now, p, &event).await?;
        tx.observe(crate::metrics::Observation::Decision { outcome: "refused", requested_at: None, at: now });
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => {
            tracing::warn!(%batch_id, decision = kind.name(), code = err.code, "batch decision refused");
            err
        }
        Err(e) => e.into(),
    }
}

async fn decide_batch(state: &AppState, p: &Principal, id: BatchId, kind: Kind<'_>) -> Result<Decided, ApiError> {
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let before = load(&mut tx, id).await?;
    if let Err(err) = gate(state, p, &before, kind) {
        return Err(refuse_whole(tx, now, p, id, kind, err, Vec::new()).await);
    }
    let mut results = Vec::with_capacity(before.releases.len());
    let mut allowed = Vec::new();
    for r in &before.releases {
        match check(state, p, r, kind, now) {
            Ok(ok) => allowed.push((r, ok)),
            Err(reason) => {
                let mut status = r.status;
                // As a single decision does: an expired-but-unswept release is expired now.
                if reason == RefusalReason::Expired && r.status == ReleaseStatus::Pending {
                    expire_in_tx(&mut tx, now, r.id, &r.machine_id, r.expires_at).await?;
                    status = ReleaseStatus::Expired;
                }
                let e = refusal_error(kind.decision(), reason, r, state);
                results.push((r.id, Outcome::refused(r.id, &r.machine_id, status, e.code, e.message)));
            }
        }
    }
    if let Kind::Approve(_) = kind
        && !allowed.is_empty()
        && let Some(err) = over_approval_limit(state, &mut tx, p, allowed.len() as u32, now).await?
    {
        for (r, _) in &allowed {
            let outcome = Outcome::refused(r.id, &r.machine_id, r.status, err.code, err.message.clone());
            results.push((r.id, outcome));
        }
        return Err(refuse_whole(tx, now, p, id, kind, err, in_batch_order(&before, results)).await);
    }
    let mut approved_any = false;
    for (r, step) in &allowed {
        let after = apply(&mut tx, p, r, step, now).await?;
        approved_any |= after == ReleaseStatus::Approved;
        results.push((r.id, Outcome::applied(r.id, &r.machine_id, after)));
    }
    let results = in_batch_order(&before, results);
    let applied = allowed.len();
    let event = batch_event(p, id, kind, applied, results.clone());
    record(&mut tx, now, p, &event).await?;
    let batch = load(&mut tx, id).await?;
    tx.commit().await?;
    tracing::debug!(applied, of = batch.releases.len(), decision = kind.name(), "batch decided");
    if approved_any {
        state.approved.notify_one();
    }
    Ok(Decided { batch, results })
}

/// Applies the decision `step` to `r` in `tx`, with the release's own audit entries; its status
/// after.
async fn apply(
    tx: &mut db::Tx,
    p: &Principal,
    r: &Release,
    step: &Allowed<'_>,
    now: Timestamp,
) -> Result<ReleaseStatus, ApiError> {
    Ok(match step {
        Allowed::Approve(comment, effect) => {
            record_approval(tx, p, r, effect, *comment, now).await?;
            if effect.reaches_quorum { ReleaseStatus::Approved } else { r.status }
        }
        Allowed::Reject(comment) => {
            let event =
                AuditEvent::ReleaseRejected { comment: comment.as_str().to_string(), console: p.sign_in.clone() };
            let change = Change::Reject { by: &p.id, comment: comment.as_str() };
            apply_final(tx, p, r, change, &event, now).await?.to
        }
        Allowed::Cancel => {
            apply_final(tx, p, r, Change::Cancel { by: &p.id }, &AuditEvent::ReleaseCancelled, now).await?.to
        }
    })
}

/// The batch's own audit entry for a decision that applied to `applied` releases: the
/// decision's, or one refusal when it applied to none (each release's reason is in `results`).
fn batch_event(p: &Principal, id: BatchId, kind: Kind<'_>, applied: usize, results: Vec<Outcome>) -> AuditEvent {
    let batch_id = id.to_string();
    if applied == 0 {
        let decision = kind.name().into();
        return AuditEvent::BatchDecisionRefused { batch_id, decision, reason: "nothing_applied".into(), results };
    }
    match kind {
        Kind::Approve(comment) => AuditEvent::BatchApproved {
            batch_id,
            comment: comment.map(|c| c.as_str().to_string()),
            results,
            console: p.sign_in.clone(),
        },
        Kind::Reject(comment) => AuditEvent::BatchRejected {
            batch_id,
            comment: comment.as_str().to_string(),
            results,
            console: p.sign_in.clone(),
        },
        Kind::Cancel => AuditEvent::BatchCancelled { batch_id, results },
    }
}

/// `results` (keyed by release) in the order of the batch's releases.
fn in_batch_order(b: &BatchState, mut results: Vec<(crate::domain::ReleaseId, Outcome)>) -> Vec<Outcome> {
    let order: std::collections::HashMap<_, _> = b.releases.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
    results.sort_by_key(|(id, _)| order.get(id).copied().unwrap_or(usize::MAX));
    results.into_iter().map(|(_, o)| o).collect()
}

/// The 429 for `count` more approvals by `p` when they would pass the policy's hourly limit.
async fn over_approval_limit(
    state: &AppState,
    tx: &mut db::Tx,
    p: &Principal,
    count: u32,
    now: Timestamp,
) -> Result<Option<ApiError>, ApiError> {
    let limit = state.policy().max_approvals_per_approver_per_hour();
    let Some(max) = limit else { return Ok(None) };
    let recent = db::velocity::count_since(tx, Counted::Approvals, &p.id, now.minus(HOUR)).await?;
    if !over_limit(recent + count - 1, limit) {
        return Ok(None);
    }
    let counted = (recent + count.min(max)).saturating_sub(1);
    let retry = crate::service::velocity::retry_after(tx, Counted::Approvals, &p.id, now, counted, limit).await?;
    let message = format!(
        "this batch approval would record {count} approvals; with your {recent} in the last hour that passes the \
         policy's limit of {max} per hour{}; nothing was approved",
        if count > max { " (approve the releases in smaller steps)" } else { "" }
    );
    Ok(Some(ApiError::new(StatusCode::TOO_MANY_REQUESTS, "approval_rate_exceeded", message).with_retry_after(retry)))
}
