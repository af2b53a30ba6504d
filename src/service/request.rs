//! Requesting a release: read the device from MDE, find the rule that applies, check the
//! velocity guard, and store the pending release with the rule it was requested under.

use super::device;
use super::expiry::expire_in_tx;
use super::releases::{load, record, require_role};
use super::transition::{self, NewRelease, TransitionError};
use crate::audit::{self, Actor, AuditEvent, Subject};
use crate::auth::Principal;
use crate::db;
use crate::db::velocity::Counted;
use crate::domain::{Comment, DecidedUnder, MachineId, Release, ReleaseId, Ticket};
use crate::error::ApiError;
use crate::rules::{Policy, over_limit};
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
    let facts = match device::read(state.mde.as_deref(), &req.machine_id).await? {
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
    if let Some(open) = db::releases::open_for_machine(&mut tx, &req.machine_id).await? {
        let existing = load(&mut tx, open).await?;
        // An expired-but-unswept request must not block a new one.
        if !(existing.is_past_expiry(now)
            && expire_in_tx(&mut tx, now, open, &existing.machine_id, existing.expires_at).await?)
        {
            return Err(ApiError::conflict(
                "release_already_open",
                format!("machine {} already has an open release ({})", req.machine_id, existing.status),
            )
            .with("open_release_id", open.to_string()));
        }
    }
    let id = ReleaseId::new();
    let expires_at = now.plus(rule.request_ttl);
    let approvals_required = rule.approvals_required();
    let decided_under =
        DecidedUnder { rule, hash: policy.hash(), device: facts.device, isolated_by: facts.isolated_by };
    let new = NewRelease {
        id,
        machine_id: &req.machine_id,
        comment: req.comment.as_str(),
        ticket: req.ticket.as_ref().map(Ticket::as_str),
        requested_by: &p.id,
        requested_at: now,
        expires_at,
        approvals_required,
        decided_under: &decided_under,
        break_glass: glass.map(|within| now.plus(within)),
        batch_id: None,
    };
    let event = AuditEvent::ReleaseRequested {
        comment: req.comment.as_str().to_string(),
        ticket: req.ticket.as_ref().map(|t| t.as_str().to_string()),
        approvals_required,
        expires_at,
        rule: decided_under.rule.name.clone(),
        policy_hash: decided_under.hash.clone(),
        isolated_by: decided_under.isolated_by.clone(),
        console: p.sign_in.clone(),
        batch_id: None,
    };
    match transition::create(&mut tx, &new, Actor::Principal(&p.id), &event).await {
        Ok(_) => {}
        Err(TransitionError::AlreadyOpen) => {
            return Err(ApiError::conflict(
                "release_already_open",
                format!("machine {} already has an open release", req.machine_id),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    if let Some(ratify_by) = new.break_glass {
        let event = AuditEvent::BreakGlassReleased { ratify_by, roles: p.roles_vec() };
        record(&mut tx, now, p, id, &req.machine_id, &event).await?;
    }
    let release = load(&mut tx, id).await?;
    tx.commit().await?;
    if new.break_glass.is_some() {
        tracing::warn!(release_id = %id, "BREAK-GLASS release: sent at once, to be ratified");
        state.approved.notify_one();
    }
    tracing::info!(release_id = %id, rule = %decided_under.rule.name, "release requested");
    Ok(release)
}
