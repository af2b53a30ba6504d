//! Pure decisions about releases: given the release, the caller and `now`, may this happen?
//! No I/O and no clock: the caller passes everything in, so every rule is a table test.

use crate::audit::RefusalReason;
use crate::domain::{Release, ReleaseStatus};

/// The caller as the policy sees them.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub id: &'a str,
    /// Holds the approver role.
    pub is_approver: bool,
}

/// What an approval does when it is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalEffect {
    /// Distinct approvals after this one.
    pub approvals: u32,
    /// This approval completes the quorum: the release becomes `approved`.
    pub reaches_quorum: bool,
}

fn expired(r: &Release, now_ms: i64) -> bool {
    r.status == ReleaseStatus::Expired || r.is_past_expiry(now_ms)
}

/// May `caller` approve `r` at `now_ms`? Checked in this order: the requester never approves
/// their own release (whatever roles they hold), the approver role, expiry, pending, and one
/// approval per person.
pub fn decide_approval(r: &Release, caller: Caller<'_>, now_ms: i64) -> Result<ApprovalEffect, RefusalReason> {
    if caller.id == r.requested_by {
        return Err(RefusalReason::SelfDecision);
    }
    if !caller.is_approver {
        return Err(RefusalReason::MissingRole);
    }
    if expired(r, now_ms) {
        return Err(RefusalReason::Expired);
    }
    if r.status != ReleaseStatus::Pending {
        return Err(RefusalReason::NotPending);
    }
    if r.approved_by(caller.id) {
        return Err(RefusalReason::AlreadyApproved);
    }
    let approvals = r.approvals.len() as u32 + 1;
    Ok(ApprovalEffect { approvals, reaches_quorum: approvals >= r.approvals_required })
}

/// May `caller` reject `r`? Only an approver who is not the requester, only while pending.
pub fn decide_rejection(r: &Release, caller: Caller<'_>, now_ms: i64) -> Result<(), RefusalReason> {
    if caller.id == r.requested_by {
        return Err(RefusalReason::SelfDecision);
    }
    if !caller.is_approver {
        return Err(RefusalReason::MissingRole);
    }
    if expired(r, now_ms) {
        return Err(RefusalReason::Expired);
    }
    if r.status != ReleaseStatus::Pending {
        return Err(RefusalReason::NotPending);
    }
    Ok(())
}

/// May `caller` cancel `r`? Only its requester, only while pending.
pub fn decide_cancel(r: &Release, caller: Caller<'_>, now_ms: i64) -> Result<(), RefusalReason> {
    if caller.id != r.requested_by {
        return Err(RefusalReason::NotRequester);
    }
    if expired(r, now_ms) {
        return Err(RefusalReason::Expired);
    }
    if r.status != ReleaseStatus::Pending {
        return Err(RefusalReason::NotPending);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Approval, MachineId, ReleaseId};
    use RefusalReason::*;

    const NOW: i64 = 1_000_000;

    fn release(status: ReleaseStatus, required: u32, approvers: &[&str]) -> Release {
        Release {
            id: ReleaseId::new(),
            machine_id: MachineId::parse(&"a".repeat(40)).unwrap(),
            comment: "clean after reimage".into(),
            ticket: None,
            status,
            requested_by: "alice".into(),
            requested_at: NOW - 1000,
            expires_at: NOW + 1000,
            approvals_required: required,
            approved_at: None,
            decided_by: None,
            decided_at: None,
            decision_comment: None,
            mde_action_id: None,
            mde_action_status: None,
            attempts: 0,
            last_error: None,
            approvals: approvers
                .iter()
                .map(|a| Approval { approver: a.to_string(), comment: None, at: NOW - 10 })
                .collect(),
        }
    }

    fn approver(id: &str) -> Caller<'_> {
        Caller { id, is_approver: true }
    }

    #[test]
    fn approval_table() {
        use ReleaseStatus::*;
        type Case<'a> = (&'a str, Release, Caller<'a>, i64, Result<ApprovalEffect, RefusalReason>);
        let cases: Vec<Case> = vec![
            (
                "second person completes a quorum of one",
                release(Pending, 1, &[]),
                approver("bob"),
                NOW,
                Ok(ApprovalEffect { approvals: 1, reaches_quorum: true }),
            ),
            (
                "first of two approvals",
                release(Pending, 2, &[]),
                approver("bob"),
                NOW,
                Ok(ApprovalEffect { approvals: 1, reaches_quorum: false }),
            ),
            (
                "second of two approvals",
                release(Pending, 2, &["carol"]),
                approver("bob"),
                NOW,
                Ok(ApprovalEffect { approvals: 2, reaches_quorum: true }),
            ),
            ("requester with the approver role", release(Pending, 1, &[]), approver("alice"), NOW, Err(SelfDecision)),
            (
                "requester without the role is still self-approval",
                release(Pending, 1, &[]),
                Caller { id: "alice", is_approver: false },
                NOW,
                Err(SelfDecision),
            ),
            (
                "no approver role",
                release(Pending, 1, &[]),
                Caller { id: "bob", is_approver: false },
                NOW,
                Err(MissingRole),
            ),
            ("same person twice", release(Pending, 2, &["bob"]), approver("bob"), NOW, Err(AlreadyApproved)),
            ("already approved", release(Approved, 1, &["carol"]), approver("bob"), NOW, Err(NotPending)),
            ("rejected", release(Rejected, 1, &[]), approver("bob"), NOW, Err(NotPending)),
            (
                "at the expiry instant",
                release(Pending, 1, &[]),
                approver("bob"),
                NOW + 1000,
                Err(RefusalReason::Expired),
            ),
            ("marked expired", release(Expired, 1, &[]), approver("bob"), NOW, Err(RefusalReason::Expired)),
        ];
        for (name, r, caller, now, want) in cases {
            assert_eq!(decide_approval(&r, caller, now), want, "{name}");
        }
    }

    #[test]
    fn rejection_table() {
        use ReleaseStatus::*;
        assert_eq!(decide_rejection(&release(Pending, 1, &[]), approver("bob"), NOW), Ok(()));
        assert_eq!(decide_rejection(&release(Pending, 1, &[]), approver("alice"), NOW), Err(SelfDecision));
        assert_eq!(
            decide_rejection(&release(Pending, 1, &[]), Caller { id: "bob", is_approver: false }, NOW),
            Err(MissingRole)
        );
        assert_eq!(decide_rejection(&release(Approved, 1, &["c"]), approver("bob"), NOW), Err(NotPending));
        assert_eq!(
            decide_rejection(&release(Pending, 1, &[]), approver("bob"), NOW + 5000),
            Err(RefusalReason::Expired)
        );
    }

    #[test]
    fn cancellation_table() {
        use ReleaseStatus::*;
        let requester = Caller { id: "alice", is_approver: false };
        assert_eq!(decide_cancel(&release(Pending, 1, &[]), requester, NOW), Ok(()));
        assert_eq!(decide_cancel(&release(Pending, 1, &[]), approver("bob"), NOW), Err(NotRequester));
        assert_eq!(decide_cancel(&release(Approved, 1, &["bob"]), requester, NOW), Err(NotPending));
        assert_eq!(decide_cancel(&release(Pending, 1, &[]), requester, NOW + 1000), Err(RefusalReason::Expired));
    }
}
