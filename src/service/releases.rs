//! Deciding releases: approve (and ratify), reject, cancel. Reading them: `reading`.

use super::expiry::expire_in_tx;
use super::transition::{self, At, Change, TransitionError};
use crate::audit::{self, Actor, AuditEvent, Subject};
use crate::auth::Principal;
use crate::clock::Timestamp;
use crate::db;
use crate::db::velocity::Counted;
use crate::decide::{self, Caller, RefusalReason};
use crate::domain::{Comment, MachineId, Release, ReleaseId, ReleaseStatus};
use crate::error::ApiError;
use crate::metrics::Observation;
use crate::rules::over_limit;
use crate::state::AppState;

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

/// Which decision a refusal was about, for its audit entry and error code.
#[derive(Debug, Clone, Copy)]
pub(super) enum Decision {
    Approve,
    Reject,
    Cancel,
}

/// The error a single decision of `r` is refused with, for `reason`.
pub(super) fn refusal_error(decision: Decision, reason: RefusalReason, r: &Release, state: &AppState) -> ApiError {
    match reason {
        RefusalReason::SelfDecision => match decision {
            Decision::Approve => ApiError::forbidden(
                "self_approval_forbidden",
                "you requested this release; a different person must approve it",
            ),
            _ => ApiError::forbidden("self_rejection_forbidden", "you requested this release; cancel it instead"),
        },
        RefusalReason::MissingRole => ApiError::missing_role(&state.settings.auth.approver_role),
        RefusalReason::Expired => ApiError::conflict(
            "release_expired",
            format!("this release expired at {}; request a new one", r.expires_at),
        ),
        RefusalReason::NotPending => ApiError::conflict(
            "release_not_pending",
            format!("this release is {} and can no longer be decided", r.status),
        )
        .with("status", r.status.as_str()),
        RefusalReason::AlreadyApproved => ApiError::conflict("already_approved", "you already approved this release"),
        RefusalReason::NotRequester => ApiError::forbidden("not_requester", "only the requester can cancel a release"),
        RefusalReason::IsolatorExcluded => ApiError::forbidden(
            "isolator_excluded",
            "you isolated this device, and its rule requires someone else to approve its release",
        ),
        RefusalReason::NoOpenSlot => ApiError::conflict(
            "no_open_slot",
            "the slots your roles can fill are already filled; the release needs approvers with other roles",
        ),
        RefusalReason::RatificationTooLate => ApiError::conflict(
            "ratification_too_late",
            "the ratification deadline of this break-glass release has passed; dualkey isolates the device again",
        ),
        RefusalReason::RateExceeded => ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "approval_rate_exceeded",
            "you reached the policy's limit of approvals per hour; try again later",
        ),
    }
}

/// Records `event` about release `id` on `machine`, by `p`, in the caller's transaction.
pub(super) async fn record(
    tx: &mut db::Tx,
    now: Timestamp,
    p: &Principal,
    id: ReleaseId,
    machine: &MachineId,
    event: &AuditEvent,
) -> Result<(), sqlx::Error> {
    let rid = id.to_string();
    let subject = Subject { release_id: Some(&rid), machine_id: Some(machine.as_str()) };
    audit::record(tx, now, Actor::Principal(&p.id), subject, event).await.map(|_| ())
}

pub(super) async fn load(tx: &mut crate::db::Conn, id: ReleaseId) -> Result<Release, ApiError> {
    db::releases::get(tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("release_not_found", format!("no release with id {id}")))
}

/// `p` as the pure decisions see a caller.
pub(crate) fn caller(p: &Principal) -> Caller<'_> {
    Caller { id: &p.id, roles: &p.roles, upn: p.upn.as_deref() }
}

pub(super) fn require_role(p: &Principal, role: &str) -> Result<(), ApiError> {
    if p.has_role(role) { Ok(()) } else { Err(ApiError::missing_role(role)) }
}

/// Commits a refusal's audit entry (and the expiry it may have found), then returns its error.
async fn refuse(
    state: &AppState,
    mut tx: db::Tx,
    p: &Principal,
    r: &Release,
    decision: Decision,
    reason: RefusalReason,
) -> ApiError {
    let now = state.clock.now();
    let result: Result<(), TransitionError> = async {
        if reason == RefusalReason::Expired && r.status == ReleaseStatus::Pending {
            expire_in_tx(&mut tx, now, r.id, &r.machine_id, r.expires_at).await?;
        }
        let status = if reason == RefusalReason::Expired { "expired" } else { r.status.as_str() }.to_string();
        let event = match decision {
            Decision::Approve => AuditEvent::ApprovalRefused { reason, status, roles: p.roles_vec() },
            Decision::Reject => AuditEvent::RejectionRefused { reason, status },
            Decision::Cancel => AuditEvent::CancellationRefused { reason, status },
        };
        record(&mut tx, now, p, r.id, &r.machine_id, &event).await?;
        tx.observe(Observation::Decision { outcome: "refused", requested_at: None, at: now });
        Ok(tx.commit().await?)
    }
    .await;
    match result {
        Ok(()) => {
            tracing::warn!(release_id = %r.id, principal = %crate::logsafe::untrusted(&p.id), ?decision, ?reason, "refused");
            refusal_error(decision, reason, r, state)
        }
        // Fail closed: without its audit entry, the refusal is reported as an outage.
        Err(e) => e.into(),
    }
}

/// Records `p`'s approval; the release becomes `approved` in the same transaction when the
/// number of distinct approvers reaches its quorum.
#[tracing::instrument(skip_all, fields(release_id = %id, approver = %crate::logsafe::untrusted(&p.id)))]
pub(crate) async fn approve(
    state: &AppState,
    p: &Principal,
    id: ReleaseId,
    comment: Option<Comment>,
) -> Result<Release, ApiError> {
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let r = load(&mut tx, id).await?;
    let approver_role = &state.settings.auth.approver_role;
    if r.break_glass.is_some() {
        return ratify(state, tx, p, r, comment, now).await;
    }
    let effect = match decide::approval(&r, caller(p), approver_role, now) {
        Ok(effect) => effect,
        Err(reason) => return Err(refuse(state, tx, p, &r, Decision::Approve, reason).await),
    };
    let limit = state.policy().max_approvals_per_approver_per_hour();
    // Counting reads the hour's approvals of everyone (see db::velocity): only with a guard set.
    let recent = match limit {
        Some(_) => db::velocity::count_since(&mut tx, Counted::Approvals, &p.id, now.minus(HOUR)).await?,
        None => 0,
    };
    if over_limit(recent, limit) {
        let retry = super::velocity::retry_after(&mut tx, Counted::Approvals, &p.id, now, recent, limit).await?;
        let refused = refuse(state, tx, p, &r, Decision::Approve, RefusalReason::RateExceeded).await;
        return Err(refused.with_retry_after(retry));
    }
    record_approval(&mut tx, p, &r, &effect, comment.as_ref(), now).await?;
    let release = load(&mut tx, id).await?;
    tx.commit().await?;
    if effect.reaches_quorum {
        tracing::debug!("release approved");
        state.approved.notify_one();
    }
    Ok(release)
}

/// Records `p`'s approval of `r`, which `decide::approval` allowed with `effect`, and approves
/// `r` when it completes the quorum, in `tx` (with their audit entries and notifications).
pub(super) async fn record_approval(
    tx: &mut db::Tx,
    p: &Principal,
    r: &Release,
    effect: &decide::ApprovalEffect,
    comment: Option<&Comment>,
    now: Timestamp,
) -> Result<(), ApiError> {
    let comment = comment.map(Comment::as_str);
    let roles = p.roles_vec();
    db::approvals::insert(tx, r.id, &p.id, &roles, comment, now).await?;
    let event = AuditEvent::ApprovalRecorded {
        comment: comment.map(str::to_string),
        roles,
        slots_filled: effect.filled,
        approvals_required: r.approvals_required,
        console: p.sign_in.clone(),
    };
    record(tx, now, p, r.id, &r.machine_id, &event).await?;
    tx.observe(Observation::Decision { outcome: "approved", requested_at: Some(r.requested_at), at: now });
    // Every recorded approval, the one completing the quorum included (`release.approved` follows).
    crate::notify::outbox::release_event(tx, "release.approval_added", r.id, now).await?;
    if effect.reaches_quorum {
        let mut approvers: Vec<String> = r.approvals.iter().map(|a| a.approver.clone()).collect();
        approvers.push(p.id.clone());
        let at = At { id: r.id, machine_id: &r.machine_id, status: r.status, claim: None };
        let event = AuditEvent::ReleaseApproved { approvers };
        transition::apply(tx, &at, Change::Approve, Actor::Principal(&p.id), &event, now).await?;
    }
    Ok(())
}

/// Ratifies a break-glass release: the second person, after the fact.
async fn ratify(
    state: &AppState,
    mut tx: db::Tx,
    p: &Principal,
    r: Release,
    comment: Option<Comment>,
    now: Timestamp,
) -> Result<Release, ApiError> {
    if let Err(reason) = decide::ratification(&r, caller(p), &state.settings.auth.approver_role, now) {
        return Err(refuse(state, tx, p, &r, Decision::Approve, reason).await);
    }
    let roles = p.roles_vec();
    db::approvals::insert(&mut tx, r.id, &p.id, &roles, comment.as_ref().map(Comment::as_str), now).await?;
    if !db::releases::ratify(&mut tx, r.id, &p.id, now).await? {
        return Err(ApiError::conflict("already_ratified", "this break-glass release was already ratified"));
    }
    record(
        &mut tx,
        now,
        p,
        r.id,
        &r.machine_id,
        &AuditEvent::BreakGlassRatified { ratified_by: p.id.clone(), console: p.sign_in.clone() },
    )
    .await?;
    crate::notify::outbox::release_event(&mut tx, "break_glass.ratified", r.id, now).await?;
    tx.observe(Observation::Decision { outcome: "ratified", requested_at: Some(r.requested_at), at: now });
    let release = load(&mut tx, r.id).await?;
    tx.commit().await?;
    tracing::info!(release_id = %r.id, "break-glass release ratified");
    Ok(release)
}

/// Rejects a pending release: final.
#[tracing::instrument(skip_all, fields(release_id = %id, principal = %crate::logsafe::untrusted(&p.id)))]
pub(crate) async fn reject(
    state: &AppState,
    p: &Principal,
    id: ReleaseId,
    comment: Comment,
) -> Result<Release, ApiError> {
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let r = load(&mut tx, id).await?;
    if let Err(reason) = decide::rejection(&r, caller(p), &state.settings.auth.approver_role, now) {
        return Err(refuse(state, tx, p, &r, Decision::Reject, reason).await);
    }
    let event = AuditEvent::ReleaseRejected { comment: comment.as_str().to_string(), console: p.sign_in.clone() };
    decide_final(tx, p, &r, Change::Reject { by: &p.id, comment: comment.as_str() }, event, now).await
}

/// Cancels a pending release at its requester's wish: final.
#[tracing::instrument(skip_all, fields(release_id = %id, principal = %crate::logsafe::untrusted(&p.id)))]
pub(crate) async fn cancel(state: &AppState, p: &Principal, id: ReleaseId) -> Result<Release, ApiError> {
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let r = load(&mut tx, id).await?;
    if let Err(reason) = decide::cancellation(&r, &p.id, now) {
        return Err(refuse(state, tx, p, &r, Decision::Cancel, reason).await);
    }
    decide_final(tx, p, &r, Change::Cancel { by: &p.id }, AuditEvent::ReleaseCancelled, now).await
}

/// Rejects or cancels a pending release: final.
async fn decide_final(
    mut tx: db::Tx,
    p: &Principal,
    r: &Release,
    change: Change<'_>,
    event: AuditEvent,
    now: Timestamp,
) -> Result<Release, ApiError> {
    let moved = apply_final(&mut tx, p, r, change, &event, now).await?;
    let release = load(&mut tx, r.id).await?;
    tx.commit().await?;
    tracing::debug!(status = %moved.to, "release decided");
    Ok(release)
}

/// Moves the pending release `r` by `change` (a rejection or cancellation by `p`) with its
/// audit entry `event`, in `tx`.
pub(super) async fn apply_final(
    tx: &mut db::Tx,
    p: &Principal,
    r: &Release,
    change: Change<'_>,
    event: &AuditEvent,
    now: Timestamp,
) -> Result<transition::Transitioned, TransitionError> {
    let at = At { id: r.id, machine_id: &r.machine_id, status: r.status, claim: None };
    let moved = transition::apply(tx, &at, change, Actor::Principal(&p.id), event, now).await?;
    if let Change::Reject { .. } = change {
        tx.observe(Observation::Decision { outcome: "rejected", requested_at: Some(r.requested_at), at: now });
    }
    Ok(moved)
}
