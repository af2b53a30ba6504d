//! JSON shapes of the API's answers.

use crate::audit::AuditEntry;
use crate::clock::Timestamp;
use crate::domain::Release;
use serde::Serialize;
use serde_json::Value;

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ApprovalView {
    pub approver: String,
    pub comment: Option<String>,
    pub at: Timestamp,
}

/// What the release was decided under and what it still needs.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PolicyView {
    pub rule: String,
    pub policy_hash: Option<String>,
    pub slots: Vec<crate::rules::SlotState>,
    pub exclude_isolator: bool,
    pub isolated_by: Option<String>,
    pub device: Option<crate::rules::DeviceSnapshot>,
}

/// A break-glass release's ratification state.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BreakGlassView {
    pub ratify_by: Timestamp,
    pub ratified_by: Option<String>,
    pub ratified_at: Option<Timestamp>,
    pub reisolation_action_id: Option<String>,
    pub reisolated_at: Option<Timestamp>,
    /// Failed attempts to isolate the device again.
    pub reisolation_attempts: u32,
    /// Set when dualkey gave up isolating the device again (a person must act).
    pub reisolation_abandoned_at: Option<Timestamp>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ReleaseView {
    pub id: String,
    pub machine_id: String,
    pub comment: String,
    pub ticket: Option<String>,
    pub status: &'static str,
    pub requested_by: String,
    pub requested_at: Timestamp,
    pub expires_at: Timestamp,
    pub approvals_required: u32,
    pub approvals: Vec<ApprovalView>,
    pub approved_at: Option<Timestamp>,
    pub decided_by: Option<String>,
    pub decided_at: Option<Timestamp>,
    pub decision_comment: Option<String>,
    pub mde_action_id: Option<String>,
    pub mde_action_status: Option<String>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub policy: PolicyView,
    /// `null` unless this is a break-glass release.
    pub break_glass: Option<BreakGlassView>,
    /// The batch it was requested in; `null` for a release requested alone.
    pub batch_id: Option<String>,
}

impl ReleaseView {
    /// The release as the API shows it; `approver_role` fills the slot of releases stored before
    /// policies existed.
    pub(crate) fn new(r: Release, approver_role: &str) -> Self {
        let quorum = crate::decide::quorum_of(&r, approver_role);
        let policy = match &r.decided_under {
            Some(p) => PolicyView {
                rule: p.rule.name.clone(),
                policy_hash: Some(p.hash.clone()),
                slots: quorum.slots().to_vec(),
                exclude_isolator: p.rule.exclude_isolator,
                isolated_by: p.isolated_by.clone(),
                device: Some(p.device.clone()),
            },
            None => PolicyView {
                rule: "default".into(),
                policy_hash: None,
                slots: quorum.slots().to_vec(),
                exclude_isolator: false,
                isolated_by: None,
                device: None,
            },
        };
        Self {
            id: r.id.to_string(),
            machine_id: r.machine_id.to_string(),
            comment: r.comment,
            ticket: r.ticket,
            status: r.status.as_str(),
            requested_by: r.requested_by,
            requested_at: r.requested_at,
            expires_at: r.expires_at,
            approvals_required: r.approvals_required,
            approvals: r
                .approvals
                .into_iter()
                .map(|a| ApprovalView { approver: a.approver, comment: a.comment, at: a.at })
                .collect(),
            approved_at: r.approved_at,
            decided_by: r.decided_by,
            decided_at: r.decided_at,
            decision_comment: r.decision_comment,
            mde_action_id: r.mde_action_id,
            mde_action_status: r.mde_action_status,
            attempts: r.attempts,
            last_error: r.last_error,
            policy,
            break_glass: r.break_glass.map(|b| BreakGlassView {
                ratify_by: b.ratify_by,
                ratified_by: b.ratified_by,
                ratified_at: b.ratified_at,
                reisolation_action_id: b.reisolation_action_id,
                reisolated_at: b.reisolated_at,
                reisolation_attempts: b.reisolation_attempts,
                reisolation_abandoned_at: b.reisolation_abandoned_at,
            }),
            batch_id: r.batch_id.map(|b| b.to_string()),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AuditEntryView {
    pub seq: i64,
    pub at: Timestamp,
    /// The exact value hashed into the chain (milliseconds since the Unix epoch).
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub release_id: Option<String>,
    pub machine_id: Option<String>,
    /// The seq of the previous entry about the same release (null for its first).
    pub release_prev_seq: Option<i64>,
    pub details: Value,
    pub prev_hash: String,
    pub hash: String,
}

impl From<AuditEntry> for AuditEntryView {
    fn from(e: AuditEntry) -> Self {
        Self {
            seq: e.seq,
            at: e.at,
            at_ms: e.at.unix_ms(),
            actor: e.actor,
            action: e.action,
            release_id: e.release_id,
            machine_id: e.machine_id,
            release_prev_seq: e.release_prev_seq,
            // Entries read back whatever is stored, even if tampered; verify says whether to trust it.
            details: serde_json::from_str(&e.details).unwrap_or(Value::String(e.details)),
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}
