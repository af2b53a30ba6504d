//! Requesting a release: read the device from MDE, find the rule that applies, check the
//! velocity guard, and store the pending release with the rule it was requested under.

use super::device;
use super::expiry::expire_in_tx;
use super::releases::{load, record, require_role};
use super::transition::{self, NewRelease, TransitionError};
use crate::audit::{self, Actor, AuditEvent, Subject};
use crate::auth::Principal;
use crate::clock::Timestamp;
use crate::db;
use crate::db::velocity::Counted;
use crate::domain::{BatchId, Comment, DecidedUnder, MachineId, Release, ReleaseId, ReleaseStatus, Ticket};
use crate::error::ApiError;
use crate::rules::{AppliedRule, Policy, over_limit};
use crate::state::AppState;
use axum::http::StatusCode;

/// A validated release request.
#[derive(Debug)]
pub(crate) struct NewRequest {
    pub machine_id: MachineId,
    pub comment: Comment,
    pub ticket: Option<Ticket>,
    /// Released at once by a holder of the break-glass role, to be ratified later.
    pub break_glass: bool,
}

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

/// Records a refused request (nothing else is stored) and returns its error.
async fn refuse(state: &AppState, p: &Principal, machine: &MachineId, event: AuditEvent, err: ApiError) -> ApiError {
    let now = state.clock.now();
    let result: Result<(), sqlx::Error> = async {
        let mut tx = state.db.begin().await?;
        let subject = Subject { release_id: None, machine_id: Some(machine.as_str()) };
        audit::record(&mut tx, now, Actor::Principal(&p.id), subject, &event).await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => err,
        Err(e) => e.into(),
    }
}

/// Stores a new pending release and its audit entry, under the rule `policy` (the snapshot the
/// caller checked the request with) gives its device.
#[tracing::instrument(skip_all, fields(machine_id = %req.machine_id, requested_by = %crate::logsafe::untrusted(&p.id)))]
pub(crate) async fn request(
    state: &AppState,
    policy: &Policy,
    p: &Principal,
    req: NewRequest,
) -> Result<Release, ApiError> {
    let glass = if req.break_glass {
        let bg = policy.break_glass().ok_or_else(|| {
            ApiError::unprocessable("break_glass_disabled", "break-glass releases are not enabled by the policy")
        })?;
        require_role(p, &bg.role)?;
        if req.comment.visible_len() < bg.min_comment_len as usize {
            return Err(ApiError::unprocessable(
                "invalid_comment",
                format!("a break-glass release needs a comment of at least {} visible characters", bg.min_comment_len),
            ));
        }
        Some(bg.ratify_within)
    } else {
        require_role(p, &state.settings.auth.requester_role)?;
        None
    };
    if policy.require_ticket() && req.ticket.is_none() {
        return Err(ApiError::unprocessable("ticket_required", "this policy requires a ticket reference"));
    }
    // The network call comes first, outside any transaction.
    let facts = match device::read(state, &req.machine_id).await? {
        device::Device::Isolated(facts) => facts,
        device::Device::NotIsolated(why) => {
            let event =
                AuditEvent::RequestRefused { reason: "device_not_isolated".into(), rule: None, message: why.clone() };
            let err = ApiError::unprocessable("device_not_isolated", why);
            return Err(refuse(state, p, &req.machine_id, event, err).await);
        }
    };
    let rule = policy.rule_for(&facts.device);
    if let Some(reason) = &rule.deny {
        let event = AuditEvent::RequestRefused {
            reason: "denied_by_policy".into(),
            rule: Some(rule.name.clone()),
            message: reason.clone(),
        };
        let err = ApiError::unprocessable("denied_by_policy", reason.clone()).with("rule", rule.name.clone());
        return Err(refuse(state, p, &req.machine_id, event, err).await);
    }
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let limit = policy.max_requests_per_requester_per_hour();
    // Counting reads the hour's requests of everyone (see db::velocity): only with a guard set.
    let recent = match limit {
        Some(_) => db::velocity::count_since(&mut tx, Counted::Requests, &p.id, now.minus(HOUR)).await?,
        None => 0,
    };
    if over_limit(recent, limit) {
        let retry = super::velocity::retry_after(&mut tx, Counted::Requests, &p.id, now, recent, limit).await?;
        drop(tx);
        let message = "you reached the policy's limit of release requests per hour; try again later".to_string();
        let event =
            AuditEvent::RequestRefused { reason: "request_rate_exceeded".into(), rule: None, message: message.clone() };
        let err =
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "request_rate_exceeded", message).with_retry_after(retry);
        return Err(refuse(state, p, &req.machine_id, event, err).await);
    }
    if let Some((open, status)) = open_release(&mut tx, &req.machine_id, now).await? {
        return Err(ApiError::conflict(
            "release_already_open",
            format!("machine {} already has an open release ({status})", req.machine_id),
        )
        .with("open_release_id", open.to_string()));
    }
    let ratify_by = glass.map(|within| now.plus(within));
    let rule_name = rule.name.clone();
    let new = Requested {
        machine_id: &req.machine_id,
        comment: &req.comment,
        ticket: req.ticket.as_ref(),
        facts,
        rule,
        break_glass: ratify_by,
        batch_id: None,
    };
    let id = store(&mut tx, policy, p, new, now).await?;
    if let Some(ratify_by) = ratify_by {
        let event = AuditEvent::BreakGlassReleased { ratify_by, roles: p.roles_vec() };
        record(&mut tx, now, p, id, &req.machine_id, &event).await?;
    }
    let release = load(&mut tx, id).await?;
    tx.commit().await?;
    if ratify_by.is_some() {
        tracing::warn!(release_id = %id, "BREAK-GLASS release: sent at once, to be ratified");
        state.approved.notify_one();
    }
    tracing::debug!(release_id = %id, rule = %rule_name, "release requested");
    Ok(release)
}

/// The open release that keeps `machine` from getting another, with its status. One pending
/// past its expiry is expired here (in `tx`) instead: it must not block a new request.
pub(super) async fn open_release(
    tx: &mut db::Tx,
    machine: &MachineId,
    now: Timestamp,
) -> Result<Option<(ReleaseId, ReleaseStatus)>, ApiError> {
    let Some(open) = db::releases::open_for_machine(tx, machine).await? else { return Ok(None) };
    let existing = load(tx, open).await?;
    if existing.is_past_expiry(now) && expire_in_tx(tx, now, open, &existing.machine_id, existing.expires_at).await? {
        return Ok(None);
    }
    Ok(Some((open, existing.status)))
}

/// A release about to be stored: its device as read, the rule the policy gives it, and what
/// the request said.
pub(super) struct Requested<'a> {
    pub machine_id: &'a MachineId,
    pub comment: &'a Comment,
    pub ticket: Option<&'a Ticket>,
    pub facts: device::DeviceFacts,
    pub rule: AppliedRule,
    /// `Some(ratify_by)` for a break-glass release.
    pub break_glass: Option<Timestamp>,
    pub batch_id: Option<BatchId>,
}

/// Stores `r` as a new release by `p` under `policy` (pending, or approved for break-glass)
/// with its `release_requested` entry, in `tx`.
pub(super) async fn store(
    tx: &mut db::Tx,
    policy: &Policy,
    p: &Principal,
    r: Requested<'_>,
    now: Timestamp,
) -> Result<ReleaseId, ApiError> {
    let id = ReleaseId::new();
    let expires_at = now.plus(r.rule.request_ttl);
    let approvals_required = r.rule.approvals_required();
    let decided_under =
        DecidedUnder { rule: r.rule, hash: policy.hash(), device: r.facts.device, isolated_by: r.facts.isolated_by };
    let new = NewRelease {
        id,
        machine_id: r.machine_id,
        comment: r.comment.as_str(),
        ticket: r.ticket.map(Ticket::as_str),
        requested_by: &p.id,
        requested_at: now,
        expires_at,
        approvals_required,
        decided_under: &decided_under,
        break_glass: r.break_glass,
        batch_id: r.batch_id,
    };
    let event = AuditEvent::ReleaseRequested {
        comment: r.comment.as_str().to_string(),
        ticket: r.ticket.map(|t| t.as_str().to_string()),
        approvals_required,
        expires_at,
        rule: decided_under.rule.name.clone(),
        policy_hash: decided_under.hash.clone(),
        isolated_by: decided_under.isolated_by.clone(),
        console: p.sign_in.clone(),
        batch_id: r.batch_id.map(|b| b.to_string()),
    };
    match transition::create(tx, &new, Actor::Principal(&p.id), &event).await {
        Ok(_) => Ok(id),
        Err(TransitionError::AlreadyOpen) => Err(ApiError::conflict(
            "release_already_open",
            format!("machine {} already has an open release", r.machine_id),
        )),
        Err(e) => Err(e.into()),
    }
}
