//! Typed audit events. The variant name is the entry's `action`; its fields are `details`.

use crate::auth::SignIn;
use crate::clock::Timestamp;
use crate::decide::RefusalReason;
use crate::domain::{BatchSelector, Outcome, Refused};
use serde::Serialize;
use serde_json::Value;

/// Everything dualkey records. New variants may be added; existing ones never change shape,
/// because old entries must still verify.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum AuditEvent {
    ReleaseRequested {
        comment: String,
        ticket: Option<String>,
        approvals_required: u32,
        expires_at: Timestamp,
        rule: String,
        policy_hash: String,
        isolated_by: Option<String>,
        /// The console sign-in it was made in; absent for API tokens.
        #[serde(skip_serializing_if = "Option::is_none")]
        console: Option<SignIn>,
        /// The batch it was requested in; absent for a release requested alone.
        #[serde(skip_serializing_if = "Option::is_none")]
        batch_id: Option<String>,
    },
    /// A request refused by policy (a deny rule, a velocity guard); nothing was stored.
    RequestRefused {
        reason: String,
        rule: Option<String>,
        message: String,
    },
    ApprovalRecorded {
        comment: Option<String>,
        roles: Vec<String>,
        slots_filled: u32,
        approvals_required: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        console: Option<SignIn>,
    },
    ReleaseApproved {
        approvers: Vec<String>,
    },
    ApprovalRefused {
        reason: RefusalReason,
        status: String,
        roles: Vec<String>,
    },
    ReleaseRejected {
        comment: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        console: Option<SignIn>,
    },
    RejectionRefused {
        reason: RefusalReason,
        status: String,
    },
    ReleaseCancelled,
    CancellationRefused {
        reason: RefusalReason,
        status: String,
    },
    ReleaseExpired {
        expires_at: Timestamp,
    },
    /// The policy in force, recorded at start-up whenever its hash differs from the last one.
    PolicyLoaded {
        policy_hash: String,
        rules: Vec<String>,
    },
    /// A reload (SIGHUP) found an invalid policy; the previous one stays in force.
    PolicyReloadRefused {
        error: String,
        policy_hash_in_force: String,
    },
    /// The worker took the release to send it to MDE (attempt N, counting from 1).
    DispatchClaimed {
        attempt: u32,
        worker: String,
    },
    /// MDE answered 201 to the unisolate call.
    UnisolateAccepted {
        attempt: u32,
        http_status: u16,
        mde_action_id: String,
        mde_action_status: Option<String>,
    },
    /// An action MDE already had for this release was adopted instead of sending again.
    MdeActionAdopted {
        mde_action_id: String,
        mde_action_status: Option<String>,
        found_by: String,
    },
    /// A send failed; `retryable` says whether another attempt follows.
    DispatchAttemptFailed {
        attempt: u32,
        http_status: Option<u16>,
        mde_error_code: Option<String>,
        mde_error_message: Option<String>,
        error: String,
        retryable: bool,
        next_attempt_at: Option<Timestamp>,
    },
    /// Polling saw the MDE action move to a new status.
    MdeActionProgressed {
        mde_action_id: String,
        from: Option<String>,
        to: String,
    },
    /// Polling the MDE action failed; it is polled again later.
    PollFailed {
        mde_action_id: String,
        http_status: Option<u16>,
        mde_error_code: Option<String>,
        mde_error_message: Option<String>,
        error: String,
    },
    /// The device was released: MDE's action ended `Succeeded`.
    ReleaseSucceeded {
        mde_action_id: String,
    },
    /// A break-glass release: approved at once by its requester's break-glass role.
    BreakGlassReleased {
        ratify_by: Timestamp,
        roles: Vec<String>,
    },
    /// A distinct approver ratified a break-glass release in time.
    BreakGlassRatified {
        ratified_by: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        console: Option<SignIn>,
    },
    /// Ratification did not come in time: dualkey isolated the device again.
    BreakGlassReisolated {
        mde_action_id: String,
        ratify_by: Timestamp,
    },
    /// Re-isolating an unratified break-glass release failed. `attempt` counts from 1;
    /// `next_attempt_at` is when it is tried again, `null` when this was the last attempt.
    /// (`attempt` and `next_attempt_at` were added later; older entries lack them.)
    BreakGlassReisolationFailed {
        error: String,
        http_status: Option<u16>,
        mde_error_code: Option<String>,
        attempt: u32,
        next_attempt_at: Option<Timestamp>,
    },
    /// dualkey stopped trying to isolate the device again after `attempts` failures: a person
    /// must isolate it (or ratify the release).
    BreakGlassReisolationAbandoned {
        attempts: u32,
        last_error: String,
    },
    /// The approval ran past its rule's `approval_ttl` before the release was sent: expired.
    ApprovalExpired {
        approved_at: Timestamp,
        expired_at: Timestamp,
        rule: String,
    },
    /// The policy now in force asks for more than the release had: back to pending.
    ReleaseReopened {
        rule: String,
        policy_hash: String,
        approvals_required: u32,
        expires_at: Timestamp,
    },
    /// A person signed in to the console.
    ConsoleSignedIn {
        #[serde(flatten)]
        sign_in: SignIn,
    },
    /// A console session ended by signing out.
    ConsoleSignedOut {
        signed_in_at: Timestamp,
    },
    /// A notification reached its channel (`message_id` is its `webhook-id`; never the URL).
    NotificationDelivered {
        message_id: String,
        channel: String,
        event: String,
        attempts: u32,
    },
    /// A notification will never be delivered: refused for good, or past `notify.max_age`.
    NotificationDead {
        message_id: String,
        channel: String,
        event: String,
        attempts: u32,
        reason: String,
    },
    /// A signed tree head of the log's first `size` entries (this record is entry `size` + 1).
    Checkpoint {
        size: u64,
        /// Base64 of the 32-byte root hash.
        root: String,
        /// The whole signed note (C2SP tlog-checkpoint).
        note: String,
    },
    /// A batch of releases was requested: `count` releases were stored, each with its own
    /// `release_requested`; `refused` lists the devices asked for that got none.
    BatchRequested {
        batch_id: String,
        count: u32,
        refused: Vec<Refused>,
        comment: String,
        ticket: Option<String>,
        /// What chose the devices; absent for a batch of listed machine ids.
        #[serde(skip_serializing_if = "Option::is_none")]
        selector: Option<BatchSelector>,
        #[serde(skip_serializing_if = "Option::is_none")]
        console: Option<SignIn>,
    },
    /// A batch request refused whole (nothing to release, a velocity guard); nothing was
    /// stored. `count` is how many releases it would have stored.
    BatchRequestRefused {
        reason: String,
        message: String,
        count: u32,
        refused: Vec<Refused>,
        #[serde(skip_serializing_if = "Option::is_none")]
        selector: Option<BatchSelector>,
    },
    /// A batch approval: what it did to each release of the batch (each applied approval also
    /// has its own `approval_recorded`, and `release_approved` when it completed the quorum).
    BatchApproved {
        batch_id: String,
        comment: Option<String>,
        results: Vec<Outcome>,
        #[serde(skip_serializing_if = "Option::is_none")]
        console: Option<SignIn>,
    },
    /// A batch rejection: what it did to each release (each rejected one has its own
    /// `release_rejected`).
    BatchRejected {
        batch_id: String,
        comment: String,
        results: Vec<Outcome>,
        #[serde(skip_serializing_if = "Option::is_none")]
        console: Option<SignIn>,
    },
    /// A batch cancellation by its requester (each cancelled release has its own
    /// `release_cancelled`).
    BatchCancelled {
        batch_id: String,
        results: Vec<Outcome>,
    },
    /// A batch decision (`approve`, `reject`, `cancel`) that applied to none of its releases:
    /// `reason` is why (`missing_role`, `not_requester`, `approval_rate_exceeded`, or
    /// `nothing_applied` with each release's refusal in `results`).
    BatchDecisionRefused {
        batch_id: String,
        decision: String,
        reason: String,
        results: Vec<Outcome>,
    },
    /// The release ended without releasing the device.
    ReleaseFailed {
        reason: String,
        mde_action_id: Option<String>,
        mde_action_status: Option<String>,
    },
    /// An Unisolate that no release of dualkey's explains: the device was released outside the
    /// two-person rule. `created` is MDE's `creationDateTimeUtc`; `response` is `[policy]
    /// on_bypass` when it was found (`record` or `reisolate`).
    BypassDetected {
        bypass_id: String,
        mde_action_id: String,
        requestor: Option<String>,
        requestor_comment: Option<String>,
        created: Option<String>,
        mde_action_status: Option<String>,
        response: String,
    },
    /// dualkey isolated the bypassed device again (`mde_action_id` is its Isolate).
    BypassReisolated {
        bypass_id: String,
        bypassing_action_id: String,
        mde_action_id: String,
        isolation_type: String,
    },
    /// Isolating a bypassed device again failed; `next_attempt_at` null: the last attempt.
    BypassReisolationFailed {
        bypass_id: String,
        error: String,
        http_status: Option<u16>,
        attempt: u32,
        next_attempt_at: Option<Timestamp>,
    },
    /// No re-isolation will be made for the bypass, and why (the bypassing action failed,
    /// someone isolated the device again first, or dualkey gave up).
    BypassReisolationEnded {
        bypass_id: String,
        outcome: String,
    },
    /// A person acknowledged a bypass: it no longer counts in readiness.
    BypassAcknowledged {
        bypass_id: String,
        mde_action_id: String,
        comment: Option<String>,
    },
}

impl AuditEvent {
    /// The `action` column: the variant's snake_case name.
    pub fn action(&self) -> String {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut m)) => match m.remove("action") {
                Some(Value::String(s)) => s,
                _ => "unknown".into(),
            },
            _ => "unknown".into(),
        }
    }

    /// The `details` column: the variant's fields as a JSON object.
    pub fn details(&self) -> Value {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut m)) => {
                m.remove("action");
                Value::Object(m)
            }
            _ => Value::Object(Default::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_splits_into_action_and_details() {
        let e = AuditEvent::ApprovalRefused {
            reason: RefusalReason::SelfDecision,
            status: "pending".into(),
            roles: vec!["Release.Approve".into()],
        };
        assert_eq!(e.action(), "approval_refused");
        assert_eq!(
            e.details(),
            serde_json::json!({"reason": "self_decision", "status": "pending", "roles": ["Release.Approve"]})
        );
        assert_eq!(AuditEvent::ReleaseCancelled.action(), "release_cancelled");
        assert_eq!(AuditEvent::ReleaseCancelled.details(), serde_json::json!({}));
    }
}
