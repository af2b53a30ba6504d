//! The example policy from issue 4, end to end: load, match, fill slots, deny, describe, hash.

use crate::rules::validate_tests::load;
use crate::rules::{Approver, DeviceSnapshot, Quorum, SeatRefusal, Slot};

const ISSUE_EXAMPLE: &str = r#"
[policy]
approvals_required = 1
request_ttl = "24h"
approval_ttl = "4h"          # an approved release not dispatched by then expires
min_comment_len = 10
require_ticket = false

[[policy.rules]]
name = "tier0"
match = { rbac_groups = ["Domain Controllers"], tags = ["crown-jewel"] }   # any listed value matches
require = [ { role = "Release.Approve", count = 1 }, { role = "Tier0.Owner", count = 1 } ]
request_ttl = "2h"
exclude_isolator = true      # whoever isolated the device may not approve its release

[[policy.rules]]
name = "high-risk"
match = { risk_scores = ["High"] }
deny = "High-risk devices are released only after the incident is closed in MDE"
"#;

fn dc(tags: &[&str], risk: &str) -> DeviceSnapshot {
    DeviceSnapshot {
        id: "b".repeat(40),
        computer_dns_name: Some("dc01.corp.example".into()),
        rbac_group_name: Some("Domain Controllers".into()),
        machine_tags: tags.iter().map(|t| t.to_string()).collect(),
        risk_score: Some(risk.into()),
        health_status: Some("Active".into()),
    }
}

#[test]
fn the_issue_example_applies_tier0_high_risk_and_default_in_order() {
    let p = load(ISSUE_EXAMPLE).unwrap();
    let cases = [
        ("tagged domain controller", dc(&["crown-jewel"], "Low"), "tier0"),
        // Any listed value matches: a domain controller without the tag is tier0 as well.
        ("untagged domain controller", dc(&[], "Low"), "tier0"),
        ("high-risk untagged domain controller: tier0 comes first", dc(&[], "High"), "tier0"),
        // The first match wins, so tier0 shadows high-risk for a tagged domain controller.
        ("high-risk tagged domain controller", dc(&["Crown-Jewel"], "high"), "tier0"),
    ];
    for (what, device, rule) in cases {
        assert_eq!(p.rule_for(&device).name, rule, "{what}");
    }
    let mut risky_laptop = dc(&[], "High");
    risky_laptop.rbac_group_name = Some("Workstations".into());
    let denied = p.rule_for(&risky_laptop);
    assert_eq!(denied.deny.as_deref(), Some("High-risk devices are released only after the incident is closed in MDE"));
}

#[test]
fn a_tier0_release_needs_two_distinct_people_with_two_different_roles() {
    let p = load(ISSUE_EXAMPLE).unwrap();
    let tier0 = p.rule_for(&dc(&["crown-jewel"], "Low"));
    assert!(tier0.exclude_isolator);
    assert_eq!(tier0.request_ttl.as_secs(), 2 * 3600);
    assert_eq!(tier0.approval_ttl.as_secs(), 4 * 3600);

    let both = Approver::new("alice", ["Release.Approve", "Tier0.Owner"]);
    let q = Quorum::compute(&tier0.slots, "requester", std::slice::from_ref(&both));
    assert!(!q.is_complete());
    assert_eq!(q.missing().len(), 1);
    assert_eq!(q.check_add(&Approver::new("requester", ["Release.Approve"])), Err(SeatRefusal::Requester));
    assert_eq!(q.check_add(&Approver::new("carol", ["Release.Request"])), Err(SeatRefusal::NoOpenSeat));

    let bob = Approver::new("bob", ["Release.Approve"]);
    assert!(q.can_add(&bob));
    let q = Quorum::compute(&tier0.slots, "requester", &[both, bob]);
    assert!(q.is_complete());
    assert_eq!(q.slots()[0].filled_by, ["bob"]);
    assert_eq!(q.slots()[1].filled_by, ["alice"]);

    let mut workstation = dc(&[], "Low");
    workstation.rbac_group_name = Some("Workstations".into());
    let default = p.rule_for(&workstation);
    assert_eq!(default.slots, vec![Slot { role: "Release.Approve".into(), count: 1 }]);
}

#[test]
fn the_issue_example_reads_in_plain_words() {
    let p = load(ISSUE_EXAMPLE).unwrap();
    let expected = [
        "rule \"tier0\": devices in RBAC group \"Domain Controllers\" or tagged \"crown-jewel\" need 1 approver with \
         Release.Approve and 1 with Tier0.Owner, none of them the requester; whoever isolated the device may not \
         approve; requests expire after 2h; approvals expire after 4h.",
        "rule \"high-risk\": devices with risk score \"High\" are refused: \
         \"High-risk devices are released only after the incident is closed in MDE\"",
        "otherwise (rule \"default\"): devices need 1 approver with Release.Approve, who is not the requester; \
         requests expire after 1day; approvals expire after 4h.",
        "comments need at least 10 characters; a ticket is optional.",
        "velocity: no limit on requests per requester per hour; no limit on approvals per approver per hour.",
        "break-glass: off.",
    ]
    .join("\n");
    assert_eq!(p.describe(), expected);
}

#[test]
fn guards_break_glass_and_multi_value_matches_are_described() {
    let p = load(
        r#"[policy]
approvals_required = 2
require_ticket = true
max_requests_per_requester_per_hour = 3
[policy.break_glass]
enabled = true
[[policy.rules]]
name = "lab"
match = { tags = ["lab", "test"], computer_dns_names = ["lab-*"] }
require = [ { role = "Lab.Owner", count = 2 } ]
"#,
    )
    .unwrap();
    let lines: Vec<String> = p.describe().lines().map(String::from).collect();
    assert_eq!(
        lines[0],
        "rule \"lab\": devices tagged \"lab\" or \"test\" or named \"lab-*\" need 2 approvers with Lab.Owner, \
         none of them the requester; requests expire after 1day; approvals expire after 4h."
    );
    assert!(lines[1].starts_with("otherwise (rule \"default\"): devices need 2 approvers with Release.Approve"));
    assert_eq!(lines[2], "comments need at least 10 characters; a ticket is required.");
    assert_eq!(
        lines[3],
        "velocity: at most 3 requests per requester per hour; no limit on approvals per approver per hour."
    );
    assert_eq!(
        lines[4],
        "break-glass: on; a holder of Release.BreakGlass may release a device alone with a comment of at least 30 \
         characters; a distinct approver must ratify it within 1h, or dualkey isolates the device again."
    );
}

#[test]
fn without_rules_the_default_rule_covers_all_devices() {
    let p = load("[policy]\napprovals_required = 3\napproval_ttl = \"90m\"\n").unwrap();
    assert_eq!(
        p.describe().lines().next(),
        Some(
            "rule \"default\": all devices need 3 approvers with Release.Approve, none of them the requester; \
             requests expire after 1day; approvals expire after 1h 30m."
        )
    );
}
