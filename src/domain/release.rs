//! A release request as dualkey holds it.

use super::{BatchId, MachineId, ReleaseId, ReleaseStatus};
use crate::clock::Timestamp;
use crate::rules::{AppliedRule, DeviceSnapshot};

/// One approval of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub approver: String,
    pub comment: Option<String>,
    pub at: Timestamp,
    /// The roles the approver held when approving (slots are filled by role).
    pub roles: Vec<String>,
}

/// A break-glass release: released by one person, to be ratified by another in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlass {
    /// Ratification deadline.
    pub ratify_by: Timestamp,
    pub ratified_by: Option<String>,
    pub ratified_at: Option<Timestamp>,
    /// The Isolate action dualkey made when ratification did not come in time.
    pub reisolation_action_id: Option<String>,
    pub reisolated_at: Option<Timestamp>,
    /// Failed attempts to isolate the device again.
    pub reisolation_attempts: u32,
    /// When dualkey stopped trying to isolate the device again (attempts exhausted).
    pub reisolation_abandoned_at: Option<Timestamp>,
}

/// What a release was decided under: the rule that applied to its device, the hash of the
/// policy it came from, and the device as MDE described it at request time.
#[derive(Debug, Clone)]
pub struct DecidedUnder {
    pub rule: AppliedRule,
    pub hash: String,
    pub device: DeviceSnapshot,
    /// The requestor of the device's latest Isolate action, if MDE had one.
    pub isolated_by: Option<String>,
}

/// A release and its approvals.
#[derive(Debug, Clone)]
pub struct Release {
    pub id: ReleaseId,
    pub machine_id: MachineId,
    pub comment: String,
    pub ticket: Option<String>,
    pub status: ReleaseStatus,
    pub requested_by: String,
    pub requested_at: Timestamp,
    pub expires_at: Timestamp,
    /// When the release last changed (any column of its row).
    pub updated_at: Timestamp,
    pub approvals_required: u32,
    pub approved_at: Option<Timestamp>,
    pub decided_by: Option<String>,
    pub decided_at: Option<Timestamp>,
    pub decision_comment: Option<String>,
    pub mde_action_id: Option<String>,
    pub mde_action_status: Option<String>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub approvals: Vec<Approval>,
    /// `None` only for releases stored before policies existed.
    pub decided_under: Option<DecidedUnder>,
    /// `Some` for a break-glass release.
    pub break_glass: Option<BreakGlass>,
    /// The batch it was requested in, if any.
    pub batch_id: Option<BatchId>,
}

impl Release {
    /// A pending release whose time ran out (it may not have been marked yet).
    pub fn is_past_expiry(&self, now: Timestamp) -> bool {
        self.status == ReleaseStatus::Pending && now >= self.expires_at
    }

    /// Whether `principal`, or someone who is the same person ([`super::same_person`]), approved.
    pub fn approved_by(&self, principal: &str) -> bool {
        self.approvals.iter().any(|a| super::same_person(&a.approver, principal))
    }
}
