//! Pure decisions about releases: given the release, the caller and `now`, may this happen,
//! and if not, the [`RefusalReason`]. No I/O and no clock: the caller passes everything in, so
//! every rule is a table test. (The release *policy* itself, which rule applies and what it
//! demands, is [`crate::rules::Policy`]; this module applies it to one release and one caller.)

use crate::clock::Timestamp;
use crate::domain::{Release, ReleaseStatus, same_person};
use crate::rules::{Approver, Quorum, Slot};
use serde::Serialize;
use std::collections::BTreeSet;

/// Why an attempt was refused (recorded, because refused attempts matter to auditors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// The requester tried to decide their own release.
    SelfDecision,
    /// The caller lacks the role the action needs.
    MissingRole,
    /// The release is no longer pending.
    NotPending,
    /// The release passed its expiry.
    Expired,
    /// The caller already approved this release.
    AlreadyApproved,
    /// Only the requester may cancel.
    NotRequester,
    /// The rule excludes whoever isolated the device, and the caller did.
    IsolatorExcluded,
    /// The approval would fill no open slot (the slots for the caller's roles are full).
    NoOpenSlot,
    /// The caller reached a velocity guard of the policy.
    RateExceeded,
    /// A break-glass release past its ratification deadline (or already re-isolated).
    RatificationTooLate,
}

/// The caller as a decision sees them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller<'a> {
    pub id: &'a str,
    pub roles: &'a BTreeSet<String>,
    /// The identity compared with the device's isolator (`upn` or `preferred_username`).
    pub upn: Option<&'a str>,
}

/// What an approval does when it is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApprovalEffect {
    /// Seats filled after this approval.
    pub filled: u32,
    /// This approval completes every slot: the release becomes `approved`.
    pub reaches_quorum: bool,
}

fn expired(r: &Release, now: Timestamp) -> bool {
    r.status == ReleaseStatus::Expired || r.is_past_expiry(now)
}

/// The slots a release must fill: its rule's, or for a release stored before policies existed,
/// `approvals_required` approvers with the approver role.
pub(crate) fn slots_of(r: &Release, approver_role: &str) -> Vec<Slot> {
    match &r.decided_under {
        Some(p) => p.rule.slots.clone(),
        None => vec![Slot { role: approver_role.to_string(), count: r.approvals_required }],
    }
}

/// Who approved `r` so far, with the roles they held then, in approval order.
pub(crate) fn approvers(r: &Release) -> Vec<Approver> {
    r.approvals.iter().map(|a| Approver::new(a.approver.clone(), a.roles.clone())).collect()
}

/// The current state of a release's slots.
pub(crate) fn quorum_of(r: &Release, approver_role: &str) -> Quorum {
    Quorum::compute(&slots_of(r, approver_role), &r.requested_by, &approvers(r))
}

fn holds_a_slot_role(slots: &[Slot], caller: Caller<'_>) -> bool {
    slots.iter().any(|s| caller.roles.contains(&s.role))
}

fn is_isolator(r: &Release, caller: Caller<'_>) -> bool {
    let Some(p) = &r.decided_under else { return false };
    let Some(isolator) = p.isolated_by.as_deref() else { return false };
    p.rule.exclude_isolator && [Some(caller.id), caller.upn].into_iter().flatten().any(|me| same_person(me, isolator))
}

/// May `caller` approve `r` at `now`? In this order: the requester never approves their own
/// release (whatever roles they hold; identities compare as people, [`same_person`]); the caller must hold a role one of the release's slots
/// needs; whoever isolated the device is refused when the rule excludes the isolator; then
/// expiry, pending, one approval per person, and the approval must fill an open seat.
pub(crate) fn approval(
    r: &Release,
    caller: Caller<'_>,
    approver_role: &str,
    now: Timestamp,
) -> Result<ApprovalEffect, RefusalReason> {
    if same_person(caller.id, &r.requested_by) {
        return Err(RefusalReason::SelfDecision);
    }
    let slots = slots_of(r, approver_role);
    if !holds_a_slot_role(&slots, caller) {
        return Err(RefusalReason::MissingRole);
    }
    if is_isolator(r, caller) {
        return Err(RefusalReason::IsolatorExcluded);
    }
    if expired(r, now) {
        return Err(RefusalReason::Expired);
    }
    if r.status != ReleaseStatus::Pending {
        return Err(RefusalReason::NotPending);
    }
    if r.approved_by(caller.id) {
        return Err(RefusalReason::AlreadyApproved);
    }
    let mut approvers = approvers(r);
    let before = Quorum::compute(&slots, &r.requested_by, &approvers).filled();
    approvers.push(Approver::new(caller.id, caller.roles.iter().cloned()));
    let after = Quorum::compute(&slots, &r.requested_by, &approvers);
    if after.filled() <= before {
        return Err(RefusalReason::NoOpenSlot);
    }
    Ok(ApprovalEffect { filled: after.filled(), reaches_quorum: after.is_complete() })
}

/// May `caller` ratify the break-glass release `r` (the approve endpoint after the fact)? Not
/// its requester; an approver (or a holder of a slot role); once; before the deadline and
/// before dualkey isolated the device again.
pub(crate) fn ratification(
    r: &Release,
    caller: Caller<'_>,
    approver_role: &str,
    now: Timestamp,
) -> Result<(), RefusalReason> {
    let Some(bg) = &r.break_glass else { return Err(RefusalReason::NotPending) };
    if same_person(caller.id, &r.requested_by) {
        return Err(RefusalReason::SelfDecision);
    }
    if !caller.roles.contains(approver_role) && !holds_a_slot_role(&slots_of(r, approver_role), caller) {
        return Err(RefusalReason::MissingRole);
    }
    if bg.ratified_at.is_some() {
        return Err(RefusalReason::AlreadyApproved);
    }
    if bg.reisolation_action_id.is_some() || now >= bg.ratify_by {
        return Err(RefusalReason::RatificationTooLate);
    }
    Ok(())
}

/// May `caller` reject `r`? Only someone holding a role the release's slots need (or the
/// approver role), who is not the requester, only while pending.
pub(crate) fn rejection(
    r: &Release,
    caller: Caller<'_>,
    approver_role: &str,
    now: Timestamp,
) -> Result<(), RefusalReason> {
    if same_person(caller.id, &r.requested_by) {
        return Err(RefusalReason::SelfDecision);
    }
    if !caller.roles.contains(approver_role) && !holds_a_slot_role(&slots_of(r, approver_role), caller) {
        return Err(RefusalReason::MissingRole);
    }
    if expired(r, now) {
        return Err(RefusalReason::Expired);
    }
    if r.status != ReleaseStatus::Pending {
        return Err(RefusalReason::NotPending);
    }
    Ok(())
}

/// May `caller` cancel `r`? Only its requester, only while pending.
pub(crate) fn cancellation(r: &Release, caller_id: &str, now: Timestamp) -> Result<(), RefusalReason> {
    if caller_id != r.requested_by {
        return Err(RefusalReason::NotRequester);
    }
    if expired(r, now) {
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
    use crate::domain::{Approval, DecidedUnder, MachineId, ReleaseId};
    use crate::rules::{AppliedRule, DeviceSnapshot};
    use RefusalReason::*;
    use std::time::Duration;

    const NOW: Timestamp = Timestamp::from_unix_ms(1_000_000);

    fn ms(n: i64) -> Timestamp {
        Timestamp::from_unix_ms(NOW.unix_ms() + n)
    }
    const APPROVE: &str = "Release.Approve";
    const OWNER: &str = "Tier0.Owner";

    fn roles(rs: &[&str]) -> BTreeSet<String> {
        rs.iter().map(|r| r.to_string()).collect()
    }

    fn release(status: ReleaseStatus, slots: &[(&str, u32)], approvals: &[(&str, &[&str])]) -> Release {
        let rule = AppliedRule {
            name: "test".into(),
            deny: None,
            slots: slots.iter().map(|(role, count)| Slot { role: role.to_string(), count: *count }).collect(),
            request_ttl: Duration::from_secs(3600),
            approval_ttl: Duration::from_secs(3600),
            exclude_isolator: true,
        };
        Release {
            id: ReleaseId::new(),
            machine_id: MachineId::parse(&"a".repeat(40)).unwrap(),
            comment: "clean after reimage".into(),
            ticket: None,
            status,
            requested_by: "alice".into(),
            requested_at: ms(-1000),
            expires_at: ms(1000),
            updated_at: ms(-1000),
            approvals_required: slots.iter().map(|s| s.1).sum(),
            approved_at: None,
            decided_by: None,
            decided_at: None,
            decision_comment: None,
            mde_action_id: None,
            mde_action_status: None,
            attempts: 0,
            last_error: None,
            approvals: approvals
                .iter()
                .map(|(who, rs)| Approval {
                    approver: who.to_string(),
                    comment: None,
                    at: ms(-10),
                    roles: rs.iter().map(|r| r.to_string()).collect(),
                })
                .collect(),
            decided_under: Some(DecidedUnder {
                rule,
                hash: "h".into(),
                device: DeviceSnapshot::default(),
                isolated_by: Some("Isolator@Contoso.com".into()),
            }),
            break_glass: None,
            batch_id: None,
        }
    }

    fn decide(
        r: &Release,
        id: &str,
        rs: &[&str],
        upn: Option<&str>,
        now: Timestamp,
    ) -> Result<ApprovalEffect, RefusalReason> {
        let held = roles(rs);
        approval(r, Caller { id, roles: &held, upn }, APPROVE, now)
    }

    fn ok(filled: u32, reaches_quorum: bool) -> Result<ApprovalEffect, RefusalReason> {
        Ok(ApprovalEffect { filled, reaches_quorum })
    }

    #[test]
    fn approval_table() {
        use ReleaseStatus::*;
        let one = [(APPROVE, 1)];
        let two = [(APPROVE, 2)];
        let tier0 = [(APPROVE, 1), (OWNER, 1)];
        type Case<'a> = (&'a str, Release, &'a str, &'a [&'a str], Timestamp, Result<ApprovalEffect, RefusalReason>);
        let cases: Vec<Case> = vec![
            (
                "a second person completes a quorum of one",
                release(Pending, &one, &[]),
                "bob",
                &[APPROVE],
                NOW,
                ok(1, true),
            ),
            ("first of two", release(Pending, &two, &[]), "bob", &[APPROVE], NOW, ok(1, false)),
            ("second of two", release(Pending, &two, &[("carol", &[APPROVE])]), "bob", &[APPROVE], NOW, ok(2, true)),
            ("requester with the role", release(Pending, &one, &[]), "alice", &[APPROVE], NOW, Err(SelfDecision)),
            ("requester without the role", release(Pending, &one, &[]), "alice", &[], NOW, Err(SelfDecision)),
            ("no slot role", release(Pending, &one, &[]), "bob", &["Audit.Read"], NOW, Err(MissingRole)),
            (
                "same person twice",
                release(Pending, &two, &[("bob", &[APPROVE])]),
                "bob",
                &[APPROVE],
                NOW,
                Err(AlreadyApproved),
            ),
            ("not pending", release(Approved, &one, &[("carol", &[APPROVE])]), "bob", &[APPROVE], NOW, Err(NotPending)),
            (
                "at the expiry instant",
                release(Pending, &one, &[]),
                "bob",
                &[APPROVE],
                ms(1000),
                Err(RefusalReason::Expired),
            ),
            (
                "tier0: an approver fills the approver slot",
                release(Pending, &tier0, &[]),
                "bob",
                &[APPROVE],
                NOW,
                ok(1, false),
            ),
            (
                "tier0: a second approver has no open slot",
                release(Pending, &tier0, &[("carol", &[APPROVE])]),
                "bob",
                &[APPROVE],
                NOW,
                Err(NoOpenSlot),
            ),
            (
                "tier0: an owner completes it",
                release(Pending, &tier0, &[("carol", &[APPROVE])]),
                "dave",
                &[OWNER],
                NOW,
                ok(2, true),
            ),
            (
                "tier0: someone with both roles fills the slot the other cannot",
                release(Pending, &tier0, &[("carol", &[OWNER])]),
                "bob",
                &[APPROVE, OWNER],
                NOW,
                ok(2, true),
            ),
            (
                "tier0: one person with both roles fills only one slot",
                release(Pending, &tier0, &[]),
                "bob",
                &[APPROVE, OWNER],
                NOW,
                ok(1, false),
            ),
            ("someone other than the isolator", release(Pending, &one, &[]), "bob-oid", &[APPROVE], NOW, ok(1, true)),
        ];
        for (name, r, id, rs, now, want) in cases {
            assert_eq!(decide(&r, id, rs, None, now), want, "{name}");
        }
        let r = release(Pending, &one, &[]);
        assert_eq!(
            decide(&r, "bob-oid", &[APPROVE], Some("isolator@contoso.com"), NOW),
            Err(IsolatorExcluded),
            "by upn, without case"
        );
        assert_eq!(decide(&r, "ISOLATOR@contoso.com", &[APPROVE], None, NOW), Err(IsolatorExcluded), "by principal id");
    }

    #[test]
    fn rejection_table() {
        use ReleaseStatus::*;
        let one = [(APPROVE, 1)];
        let held = roles(&[APPROVE]);
        let bob = Caller { id: "bob", roles: &held, upn: None };
        let alice = Caller { id: "alice", roles: &held, upn: None };
        let none = roles(&[]);
        assert_eq!(rejection(&release(Pending, &one, &[]), bob, APPROVE, NOW), Ok(()));
        assert_eq!(rejection(&release(Pending, &one, &[]), alice, APPROVE, NOW), Err(SelfDecision));
        let eve = Caller { id: "eve", roles: &none, upn: None };
        assert_eq!(rejection(&release(Pending, &one, &[]), eve, APPROVE, NOW), Err(MissingRole));
        assert_eq!(rejection(&release(Approved, &one, &[]), bob, APPROVE, NOW), Err(NotPending));
        assert_eq!(rejection(&release(Pending, &one, &[]), bob, APPROVE, ms(5000)), Err(RefusalReason::Expired));
    }

    #[test]
    fn cancellation_table() {
        use ReleaseStatus::*;
        let one = [(APPROVE, 1)];
        assert_eq!(cancellation(&release(Pending, &one, &[]), "alice", NOW), Ok(()));
        assert_eq!(cancellation(&release(Pending, &one, &[]), "bob", NOW), Err(NotRequester));
        assert_eq!(cancellation(&release(Approved, &one, &[]), "alice", NOW), Err(NotPending));
        assert_eq!(cancellation(&release(Pending, &one, &[]), "alice", ms(1000)), Err(RefusalReason::Expired));
    }
}
