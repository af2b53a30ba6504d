//! Sending one claimed release to MDE, exactly once.

use super::heartbeat::Heartbeat;
use super::recheck::{self, Recheck};
use super::{Worker, comment};
use crate::audit::AuditEvent;
use crate::db::{self, worker::Claim};
use crate::domain::Release;
use crate::mde::{ActionType, Api, MachineAction, MdeError, Share, Wait, latest};
use crate::service::transition::Change;
use std::time::Duration;

/// Why an action was adopted rather than created.
const AFTER_UNRECORDED_ATTEMPT: &str = "list_before_resend";
const AFTER_ACTIVE_REQUEST: &str = "active_request_already_exists";

#[tracing::instrument(name = "dispatch", skip_all, fields(release_id = %c.id, attempt = c.attempts))]
pub(super) async fn run(w: &Worker, c: Claim) -> anyhow::Result<()> {
    let Some(release) = ({
        let mut conn = w.state.db.reader().await?;
        db::releases::get(&mut conn, c.id).await?
    }) else {
        return Ok(());
    };
    if approval_expired(w, &c, &release).await? {
        return Ok(());
    }
    match recheck::run(w, &c, &release).await? {
        Recheck::Proceed => {}
        Recheck::Stopped => return Ok(()),
        Recheck::Failed(e) => return failed_attempt(w, &c, e).await,
    }
    // An earlier claim may have reached MDE without recording the answer (the daemon died, or
    // the connection dropped after MDE acted): look before sending again.
    if c.attempts > 1 {
        if !hold_until_budget(w, &c, Api::ListActions, Share::Backlog).await? {
            return Ok(());
        }
        match find_ours(w, &c).await {
            Ok(Some(action)) => return adopt(w, &c, action, AFTER_UNRECORDED_ATTEMPT).await,
            Ok(None) => {}
            Err(e) => return failed_attempt(w, &c, e).await,
        }
    }
    let (requester, reason, approvers) = {
        let mut conn = w.state.db.reader().await?;
        db::worker::parties(&mut conn, c.id).await?
    };
    let text = comment::build(c.id, &requester, &approvers, &reason);
    // Only sends unisolate: the whole budget is theirs. The claim is confirmed last, so the
    // send leaves with a whole lease ahead of it.
    let sent = loop {
        if !hold_until_budget(w, &c, Api::Unisolate, Share::Full).await? || !Heartbeat::of(w).confirm(&c).await? {
            return Ok(());
        }
        // Sent only if the budget every replica shares has room now: a wait for it happens
        // above, under the heartbeat, never inside the call after the claim was confirmed.
        match w.mde.unisolate_waiting(c.machine_id.as_str(), &text, Wait::AtMost(Duration::ZERO)).await {
            Err(MdeError::Busy { retry_after, .. }) => {
                tokio::select! {
                    () = w.state.clock.sleep(retry_after.max(Duration::from_millis(10))) => {}
                    () = c.lost.cancelled() => {}
                }
            }
            sent => break sent,
        }
    };
    match sent {
        Ok(action) => accepted(w, &c, action).await,
        Err(MdeError::ActiveRequestAlreadyExists { api, message }) => match find_ours(w, &c).await {
            Ok(Some(action)) => adopt(w, &c, action, AFTER_ACTIVE_REQUEST).await,
            // Someone else's action is running on this device: wait for it to end.
            Ok(None) => {
                let e = MdeError::Api {
                    api,
                    status: 400,
                    code: Some("ActiveRequestAlreadyExists".into()),
                    message,
                    retry_after: None,
                };
                failed_attempt_as(w, &c, &e, Failure::Retryable).await
            }
            Err(e) => failed_attempt(w, &c, e).await,
        },
        Err(e) => failed_attempt(w, &c, e).await,
    }
}

/// An approval past its rule's `approval_ttl` is never acted on: the release expires instead.
async fn approval_expired(w: &Worker, c: &Claim, release: &Release) -> anyhow::Result<bool> {
    let (Some(decided_under), Some(approved_at)) = (&release.decided_under, release.approved_at) else {
        return Ok(false);
    };
    // A break-glass release is bounded by its ratification deadline instead.
    let deadline = match &release.break_glass {
        Some(bg) if bg.ratified_at.is_none() => bg.ratify_by,
        Some(_) => return Ok(false),
        None => approved_at.plus(decided_under.rule.approval_ttl),
    };
    let now = w.state.clock.now();
    if now < deadline {
        return Ok(false);
    }
    let rule = &decided_under.rule.name;
    let error = format!("the approval expired at {deadline} (approval_ttl of rule {rule}) before it was sent");
    let mut tx = w.state.db.begin().await?;
    let event = AuditEvent::ApprovalExpired { approved_at, expired_at: deadline, rule: rule.clone() };
    if w.moved(&mut tx, c, Change::ExpireApproval { error: &error }, &event, now).await? {
        tx.commit().await?;
        tracing::warn!("approval expired before dispatch; not sending");
    }
    Ok(true)
}

/// Waits until `api` has rate budget for a caller with `share`; the heartbeat keeps the claim
/// meanwhile, however long the wait (an hour when the hourly budget is spent). False when the
/// claim was lost: another worker owns the job and this one must not send. Sends read with
/// [`Share::Backlog`], leaving part of each read API's budget to re-isolations and to the API's
/// own requests.
pub(super) async fn hold_until_budget(w: &Worker, c: &Claim, api: Api, share: Share) -> anyhow::Result<bool> {
    loop {
        if c.lost.is_cancelled() {
            tracing::warn!(?api, "the claim was lost to another worker; not calling MDE for it");
            return Ok(false);
        }
        let ready = w.mde.ready_at(api, share);
        if ready <= w.state.clock.monotonic() {
            return Ok(true);
        }
        tokio::select! {
            () = w.state.clock.sleep_until(ready) => {}
            () = c.lost.cancelled() => {}
        }
    }
}

/// The machine's Unisolate action whose comment names this release, if MDE has one.
async fn find_ours(w: &Worker, c: &Claim) -> Result<Option<MachineAction>, MdeError> {
    let actions = w.mde.list_actions(c.machine_id.as_str(), &ActionType::Unisolate).await?;
    Ok(latest(actions.iter().filter(|a| comment::names(a.requestor_comment.as_deref(), c.id))).cloned())
}

async fn accepted(w: &Worker, c: &Claim, action: MachineAction) -> anyhow::Result<()> {
    // How MDE names this app: what tells dualkey's Unisolates from everyone else's.
    if let Err(e) = crate::fleet::bypass::learn_requestor(&w.state, &action).await {
        tracing::warn!(error = %e, "could not store how MDE names this app; will learn it from the next action");
    }
    let status = action.status.as_ref().map(|s| s.as_str().to_string());
    let event = AuditEvent::UnisolateAccepted {
        attempt: c.attempts,
        http_status: 201,
        mde_action_id: action.id.clone(),
        mde_action_status: status.clone(),
    };
    record_dispatched(w, c, &action, status.as_deref(), event).await
}

async fn adopt(w: &Worker, c: &Claim, action: MachineAction, found_by: &str) -> anyhow::Result<()> {
    let status = action.status.as_ref().map(|s| s.as_str().to_string());
    tracing::info!(mde_action_id = %action.id, found_by, "adopting the MDE action this release already created");
    let event = AuditEvent::MdeActionAdopted {
        mde_action_id: action.id.clone(),
        mde_action_status: status.clone(),
        found_by: found_by.to_string(),
    };
    record_dispatched(w, c, &action, status.as_deref(), event).await
}

async fn record_dispatched(
    w: &Worker,
    c: &Claim,
    action: &MachineAction,
    status: Option<&str>,
    event: AuditEvent,
) -> anyhow::Result<()> {
    // The scan follows it from the view (the create answer may lack its machine id).
    w.fleet.observe(c.machine_id.as_str(), action.clone());
    let action_id = action.id.as_str();
    let now = w.state.clock.now();
    let next_poll = now.plus(w.config.poll_interval);
    let change = Change::Dispatch { action_id, action_status: status, next_poll };
    let mut tx = w.state.db.begin().await?;
    if !w.moved(&mut tx, c, change, &event, now).await? {
        // Our lease expired and another worker owns the job; it will find this action by listing.
        return Ok(());
    }
    tx.commit().await?;
    Ok(())
}

async fn failed_attempt(w: &Worker, c: &Claim, e: MdeError) -> anyhow::Result<()> {
    let failure = if e.is_retryable() { Failure::Retryable } else { Failure::Permanent };
    failed_attempt_as(w, c, &e, failure).await
}

/// Whether a failed send may be tried again (attempts permitting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Retryable,
    Permanent,
}

/// Records a failed attempt: back to `approved` with a backoff when retryable and attempts
/// remain, otherwise `failed`.
async fn failed_attempt_as(w: &Worker, c: &Claim, e: &MdeError, failure: Failure) -> anyhow::Result<()> {
    let now = w.state.clock.now();
    let retryable = failure == Failure::Retryable;
    let delay = if retryable { w.config.retry.delay(c.attempts, e.retry_after(), Worker::jitter()) } else { None };
    let next_attempt = delay.map(|d| now.plus(d));
    let error = e.to_string();
    let next = next_attempt.map(|t| t.to_string());
    tracing::warn!(error = %error, retryable, next_attempt = ?next, "unisolate attempt failed");
    let attempt_event = AuditEvent::DispatchAttemptFailed {
        attempt: c.attempts,
        http_status: e.status(),
        mde_error_code: e.code().map(str::to_string),
        mde_error_message: e.message().map(str::to_string),
        error: error.clone(),
        retryable: next_attempt.is_some(),
        next_attempt_at: next_attempt,
    };
    let mut tx = w.state.db.begin().await?;
    let owned = match next_attempt {
        Some(next_attempt) => {
            w.moved(&mut tx, c, Change::Retry { error: &error, next_attempt }, &attempt_event, now).await?
        }
        None => {
            w.audit(&mut tx, c, &attempt_event).await?;
            let reason = if retryable {
                format!("gave up after {} attempts: {error}", c.attempts)
            } else {
                format!("MDE refused the release: {error}")
            };
            let event = AuditEvent::ReleaseFailed { reason, mde_action_id: None, mde_action_status: None };
            w.moved(&mut tx, c, Change::Fail { action_status: None, error: &error }, &event, now).await?
        }
    };
    if !owned {
        return Ok(());
    }
    tx.commit().await?;
    Ok(())
}
