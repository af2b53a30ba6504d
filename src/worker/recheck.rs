//! Re-checking the world right before a release is sent: the device may have been released
//! (outside dualkey, or by another dualkey release) or isolated again since the approvals, and
//! the policy may have tightened.

use super::{Worker, comment};
use crate::audit::AuditEvent;
use crate::clock::Timestamp;
use crate::db::{self, worker::Claim};
use crate::decide;
use crate::domain::{DecidedUnder, Release};
use crate::mde::{ActionType, Api, Isolation, MachineAction, MdeError, Wait, isolation, latest};
use crate::rules::Quorum;
use crate::service::transition::Change;

/// What the re-check decided.
pub(super) enum Recheck {
    /// Send it.
    Proceed,
    /// Do not send; the release was finished or reopened (and audited) here.
    Stopped,
    /// MDE could not be asked; treat as a failed attempt.
    Failed(MdeError),
}

/// Reads the device and its Isolate and Unisolate actions from the view (the device list
/// refreshed in bulk when older than `[mde] device_max_age`, the actions when older than
/// `poll_interval`, each read serving every release sent meanwhile), and stops the release when
/// the world has overtaken the decision.
pub(super) async fn run(w: &Worker, c: &Claim, r: &Release) -> anyhow::Result<Recheck> {
    let machine = c.machine_id.as_str();
    let facts = match w.fleet.refresh_within(Wait::Queue, w.config.poll_interval).await {
        Ok(()) => w.fleet.device(machine, Wait::Queue).await,
        Err(e) => Err(e),
    };
    let (actions, device) = match facts {
        Ok(f) => match f.machine {
            Some(m) => (f.actions, m),
            None => return Ok(Recheck::Failed(gone(machine))),
        },
        Err(e) => return Ok(Recheck::Failed(e)),
    };
    let approved_at = r.approved_at.unwrap_or(r.requested_at);
    // Released by someone else: what the device's actions say, this release's own left out.
    // Only a finished release counts; one still running makes MDE refuse ours, and we retry.
    let others = actions.iter().filter(|a| !comment::names(a.requestor_comment.as_deref(), c.id));
    if let Isolation::Released(u) = isolation(others) {
        let reason = released_by_someone_else(w, u).await?;
        return stop(w, c, reason).await;
    }
    // Isolated again after the approvals, for a new reason. Any Isolate counts, even one that
    // failed: someone meant to isolate the device again.
    if let Some(i) = latest(actions.iter().filter(|a| a.is(&ActionType::Isolate)))
        && i.created_at().is_some_and(|t| Timestamp::from(t) > approved_at)
    {
        let who = i.made_by();
        return stop(w, c, format!("the device was isolated again by {who} after the approvals (MDE action {})", i.id))
            .await;
    }
    // A break-glass release has no approvals to weigh; its check is the ratification deadline.
    if r.break_glass.is_some() {
        return Ok(Recheck::Proceed);
    }
    // The policy in force may ask for more than the release has.
    let snapshot = device.snapshot(&c.machine_id);
    // One snapshot of the policy in force decides, and is recorded, from here to the end.
    let policy_in_force = w.state.policy();
    let rule = policy_in_force.rule_for(&snapshot);
    if let Some(reason) = &rule.deny {
        return stop(w, c, format!("the policy now in force denies this release (rule {}): {reason}", rule.name)).await;
    }
    if Quorum::compute(&rule.slots, &r.requested_by, &decide::approvers(r)).is_complete() {
        return Ok(Recheck::Proceed);
    }
    let now = w.state.clock.now();
    let seats = rule.approvals_required();
    let expires_at = now.plus(rule.request_ttl);
    let isolated_by = r.decided_under.as_ref().and_then(|p| p.isolated_by.clone());
    let decided_under = DecidedUnder { rule, hash: policy_in_force.hash(), device: snapshot, isolated_by };
    let event = AuditEvent::ReleaseReopened {
        rule: decided_under.rule.name.clone(),
        policy_hash: decided_under.hash.clone(),
        approvals_required: seats,
        expires_at,
    };
    let change = Change::Reopen { decided_under: &decided_under, approvals_required: seats, expires_at };
    let mut tx = w.state.db.begin().await?;
    if w.moved(&mut tx, c, change, &event, now).await? {
        tx.commit().await?;
        tracing::warn!(rule = %decided_under.rule.name, "the policy now requires more approvals; back to pending");
    }
    Ok(Recheck::Stopped)
}

/// Why the release stops when the device was released by someone else: a release dualkey made
/// for another request (its marker in the action's comment) is named with its people; anything
/// else was released outside dualkey, by MDE's requestor.
async fn released_by_someone_else(w: &Worker, u: &MachineAction) -> anyhow::Result<String> {
    let when = u.creation_date_time_utc.as_deref().unwrap_or("an unknown time");
    let Some(other) = u.marked_release() else {
        return Ok(format!(
            "the device was released outside dualkey by {} at {when} (MDE action {})",
            u.made_by(),
            u.id
        ));
    };
    let known = {
        let mut conn = w.state.db.reader().await?;
        db::releases::get(&mut conn, other).await?
    };
    let people = match known {
        Some(o) if o.approvals.is_empty() => format!("requested by {}", o.requested_by),
        Some(o) => {
            let approvers: Vec<&str> = o.approvals.iter().map(|a| a.approver.as_str()).collect();
            format!("requested by {}; approved by {}", o.requested_by, approvers.join(", "))
        }
        None => "not in this dualkey's database".into(),
    };
    Ok(format!("the device was already released by dualkey release {other} ({people}) at {when} (MDE action {})", u.id))
}

async fn stop(w: &Worker, c: &Claim, reason: String) -> anyhow::Result<Recheck> {
    let now = w.state.clock.now();
    let mut tx = w.state.db.begin().await?;
    let event = AuditEvent::ReleaseFailed { reason: reason.clone(), mde_action_id: None, mde_action_status: None };
    if w.moved(&mut tx, c, Change::Fail { action_status: None, error: &reason }, &event, now).await? {
        tx.commit().await?;
        tracing::warn!(%reason, "not sending the release");
    }
    Ok(Recheck::Stopped)
}

/// MDE's device list no longer holds the device: as MDE answers a read of a removed machine.
fn gone(machine: &str) -> MdeError {
    MdeError::Api {
        api: Api::ListMachines,
        status: 404,
        code: Some("ResourceNotFound".into()),
        message: Some(format!("Machine {machine} is not in Defender for Endpoint's device list")),
        retry_after: None,
    }
}
