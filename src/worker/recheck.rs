//! Re-checking the world right before a release is sent: the device may have been released
//! outside dualkey or isolated again since the approvals, and the policy may have tightened.

use super::{Worker, comment};
use crate::audit::AuditEvent;
use crate::clock::Timestamp;
use crate::db::worker::Claim;
use crate::domain::{DecidedUnder, Release};
use crate::mde::{ActionStatus, ActionType, Api, MachineAction, MdeError, Share};
use crate::rules::{Approver, DeviceSnapshot, Quorum};
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

fn latest(actions: &[MachineAction]) -> Option<&MachineAction> {
    actions.iter().max_by(|a, b| a.created_at().cmp(&b.created_at()))
}

/// Reads the device's Isolate and Unisolate actions and the device itself, and stops the
/// release when the world has overtaken the decision.
pub(super) async fn run(w: &Worker, c: &Claim, r: &Release) -> anyhow::Result<Recheck> {
    for api in [Api::ListActions, Api::GetMachine] {
        if !super::dispatch::hold_until_budget(w, c, api, Share::Backlog).await? {
            return Ok(Recheck::Stopped);
        }
    }
    let machine = c.machine_id.as_str();
    let (actions, device) = match (w.mde.list_machine_actions(machine).await, w.mde.get_machine(machine).await) {
        (Ok(a), Ok(d)) => (a, d),
        (Err(e), _) | (_, Err(e)) => return Ok(Recheck::Failed(e)),
    };
    let of_type = |t: &str| -> Vec<MachineAction> {
        actions.iter().filter(|a| a.action_type.as_ref().is_some_and(|x| x.as_str() == t)).cloned().collect()
    };
    let (isolations, releases) = (of_type(ActionType::Isolate.as_str()), of_type(ActionType::Unisolate.as_str()));
    let approved_at = r.approved_at.unwrap_or(r.requested_at);
    let last_isolate = latest(&isolations);
    let last_release = latest(&releases).filter(|u| !comment::names(u.requestor_comment.as_deref(), c.id));
    // Released outside dualkey: the newest isolation-related action is someone else's unisolate.
    if let Some(u) = last_release {
        let newer = last_isolate.is_none_or(|i| u.created_at() > i.created_at());
        // Only a finished release counts; one still running makes MDE refuse ours, and we retry.
        if newer && u.status == Some(ActionStatus::Succeeded) {
            let who = u.requestor.clone().unwrap_or_else(|| "someone".into());
            let when = u.creation_date_time_utc.clone().unwrap_or_default();
            return stop(
                w,
                c,
                format!("the device was released outside dualkey by {who} at {when} (MDE action {})", u.id),
            )
            .await;
        }
    }
    // Isolated again after the approvals, for a new reason.
    if let Some(i) = last_isolate
        && i.created_at().is_some_and(|t| Timestamp::from(t) > approved_at)
    {
        let who = i.requestor.clone().unwrap_or_else(|| "someone".into());
        return stop(w, c, format!("the device was isolated again by {who} after the approvals (MDE action {})", i.id))
            .await;
    }
    // A break-glass release has no approvals to weigh; its check is the ratification deadline.
    if r.break_glass.is_some() {
        return Ok(Recheck::Proceed);
    }
    // The policy in force may ask for more than the release has.
    let snapshot = DeviceSnapshot {
        id: machine.to_string(),
        computer_dns_name: device.computer_dns_name,
        rbac_group_name: device.rbac_group_name,
        machine_tags: device.machine_tags.unwrap_or_default(),
        risk_score: device.risk_score,
        health_status: device.health_status,
    };
    let rule = w.state.policy().rule_for(&snapshot);
    if let Some(reason) = &rule.deny {
        return stop(w, c, format!("the policy now in force denies this release (rule {}): {reason}", rule.name)).await;
    }
    let approvers: Vec<Approver> =
        r.approvals.iter().map(|a| Approver::new(a.approver.clone(), a.roles.clone())).collect();
    if Quorum::compute(&rule.slots, &r.requested_by, &approvers).is_complete() {
        return Ok(Recheck::Proceed);
    }
    let now = w.state.clock.now();
    let seats = rule.slots.iter().map(|s| s.count).sum::<u32>().max(1);
    let expires_at = now.plus(rule.request_ttl);
    let isolated_by = r.decided_under.as_ref().and_then(|p| p.isolated_by.clone());
    let decided_under = DecidedUnder { rule, hash: w.state.policy().hash(), device: snapshot, isolated_by };
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
