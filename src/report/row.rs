//! One row of the report: a release, who asked, who approved under which roles, who decided,
//! when it went out and how it ended. Built from the `releases` row, its approvals and the audit
//! entries the table does not summarise.

use crate::clock::Timestamp;
use crate::db::report::{ReleaseFacts, TrailEntry};
use crate::domain::Approval;
use serde::Serialize;

/// One approval: who, the roles they held when they approved (as recorded), and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Approver {
    pub approver: String,
    pub roles: Vec<String>,
    pub at: Timestamp,
}

/// A release as the report shows it. The field names are the CSV header and the JSON keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Row {
    pub release_id: String,
    pub machine_id: String,
    /// The device's DNS name as MDE gave it when the release was requested.
    pub device_name: Option<String>,
    pub requester: String,
    pub requested_at: Timestamp,
    pub expires_at: Timestamp,
    pub comment: String,
    pub ticket: Option<String>,
    /// The policy rule the release was decided under, and the hash of that policy.
    pub rule: Option<String>,
    pub policy_hash: Option<String>,
    pub approvals_required: i64,
    /// In approval order; a break-glass ratification is an approval too.
    pub approvers: Vec<Approver>,
    /// When it was decided: quorum reached (or break-glass), rejected, cancelled, or expired
    /// while pending.
    pub decided_at: Option<Timestamp>,
    /// Whose action decided it: the approver who completed the quorum, the break-glass
    /// requester, the rejecter or canceller, `system:dualkey` for an expiry.
    pub decided_by: Option<String>,
    pub decision_comment: Option<String>,
    /// When MDE accepted the unisolate (its 201) or dualkey adopted the action MDE had.
    pub dispatched_at: Option<Timestamp>,
    /// When it succeeded or failed, or its approval expired before it was sent.
    pub finished_at: Option<Timestamp>,
    pub break_glass: bool,
    pub ratified_by: Option<String>,
    pub ratified_at: Option<Timestamp>,
    /// The Isolate action dualkey created when a break-glass release was not ratified in time.
    pub reisolation_action_id: Option<String>,
    /// The release's status when the report was read: final, or where it stands.
    pub outcome: String,
    pub mde_action_id: Option<String>,
    pub mde_action_status: Option<String>,
}

/// What the audit entries add to the table: the last of each kind wins (a release that went back
/// to pending and was approved again was decided by its second approval).
#[derive(Debug, Default)]
struct Trail<'a> {
    approved_by: Option<&'a str>,
    expired: Option<(Timestamp, &'a str)>,
    dispatched_at: Option<Timestamp>,
    finished_at: Option<Timestamp>,
}

impl<'a> Trail<'a> {
    fn of(entries: &'a [TrailEntry]) -> Self {
        let mut t = Trail::default();
        for e in entries {
            match e.action.as_str() {
                "release_approved" | "break_glass_released" => t.approved_by = Some(&e.actor),
                "release_expired" => t.expired = Some((e.at, &e.actor)),
                "unisolate_accepted" | "mde_action_adopted" => t.dispatched_at = Some(e.at),
                "release_succeeded" | "release_failed" | "approval_expired" => t.finished_at = Some(e.at),
                _ => {}
            }
        }
        t
    }
}

fn time(t: Option<Timestamp>) -> String {
    t.map(Timestamp::rfc3339).unwrap_or_default()
}

fn text(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

impl Row {
    /// The CSV header: the names of [`Row`]'s fields, in order.
    pub(crate) const COLUMNS: [&'static str; 24] = [
        "release_id",
        "machine_id",
        "device_name",
        "requester",
        "requested_at",
        "expires_at",
        "comment",
        "ticket",
        "rule",
        "policy_hash",
        "approvals_required",
        "approvers",
        "decided_at",
        "decided_by",
        "decision_comment",
        "dispatched_at",
        "finished_at",
        "break_glass",
        "ratified_by",
        "ratified_at",
        "reisolation_action_id",
        "outcome",
        "mde_action_id",
        "mde_action_status",
    ];

    /// The row of release `f`, given its approvals and its [`crate::db::report::TRAIL_ACTIONS`]
    /// entries in order. Times the table holds come from the table; the audit trail fills in
    /// the rest (who completed a quorum, when a pending release expired, and the dispatch and
    /// end of releases stored before the table recorded them).
    pub(crate) fn new(f: ReleaseFacts, approvals: Vec<Approval>, entries: &[TrailEntry]) -> Self {
        let trail = Trail::of(entries);
        let (decided_at, decided_by) = match (f.approved_at, f.decided_at) {
            (Some(at), _) => (Some(at), trail.approved_by.map(str::to_string)),
            (None, Some(at)) => (Some(at), f.decided_by.clone()),
            (None, None) if f.status == "expired" => match trail.expired {
                Some((at, by)) => (Some(at), Some(by.to_string())),
                None => (None, None),
            },
            (None, None) => (None, None),
        };
        Row {
            release_id: f.id,
            machine_id: f.machine_id,
            device_name: f.device_name,
            requester: f.requested_by,
            requested_at: f.requested_at,
            expires_at: f.expires_at,
            comment: f.comment,
            ticket: f.ticket,
            rule: f.policy_rule,
            policy_hash: f.policy_hash,
            approvals_required: f.approvals_required,
            approvers: approvals
                .into_iter()
                .map(|a| Approver { approver: a.approver, roles: a.roles, at: a.at })
                .collect(),
            decided_at,
            decided_by,
            decision_comment: f.decision_comment,
            dispatched_at: f.dispatched_at.or(trail.dispatched_at),
            finished_at: f.finished_at.or(trail.finished_at),
            break_glass: f.break_glass == 1,
            ratified_by: f.ratified_by,
            ratified_at: f.ratified_at,
            reisolation_action_id: f.reisolation_action_id,
            outcome: f.status,
            mde_action_id: f.mde_action_id,
            mde_action_status: f.mde_action_status,
        }
    }

    /// `bob (Release.Approve); carol (Release.Approve, Tier0.Owner)`: each approver with the
    /// roles recorded for them, in approval order.
    pub(crate) fn approvers_cell(&self) -> String {
        let one = |a: &Approver| match a.roles.is_empty() {
            true => a.approver.clone(),
            false => format!("{} ({})", a.approver, a.roles.join(", ")),
        };
        self.approvers.iter().map(one).collect::<Vec<_>>().join("; ")
    }

    /// The CSV cells, in the order of [`Row::COLUMNS`]: times in RFC 3339, absent values empty.
    pub(crate) fn cells(&self) -> [String; 24] {
        [
            self.release_id.clone(),
            self.machine_id.clone(),
            text(&self.device_name),
            self.requester.clone(),
            self.requested_at.rfc3339(),
            self.expires_at.rfc3339(),
            self.comment.clone(),
            text(&self.ticket),
            text(&self.rule),
            text(&self.policy_hash),
            self.approvals_required.to_string(),
            self.approvers_cell(),
            time(self.decided_at),
            text(&self.decided_by),
            text(&self.decision_comment),
            time(self.dispatched_at),
            time(self.finished_at),
            self.break_glass.to_string(),
            text(&self.ratified_by),
            time(self.ratified_at),
            text(&self.reisolation_action_id),
            self.outcome.clone(),
            text(&self.mde_action_id),
            text(&self.mde_action_status),
        ]
    }
}

#[cfg(test)]
#[path = "row_tests.rs"]
mod tests;
