use super::*;
use crate::rules::validate_tests::load;

fn device(f: impl FnOnce(&mut DeviceSnapshot)) -> DeviceSnapshot {
    let mut d = DeviceSnapshot { id: "a".repeat(40), ..DeviceSnapshot::default() };
    f(&mut d);
    d
}

const RULES: &str = r#"
[policy]
approvals_required = 2
request_ttl = "12h"

[[policy.rules]]
name = "dc-tagged"
match = { rbac_groups = ["Domain Controllers"], tags = ["crown-jewel", "tier0"] }
require = [ { role = "Release.Approve", count = 1 }, { role = "Tier0.Owner", count = 1 } ]
approval_ttl = "1h"
exclude_isolator = true

[[policy.rules]]
name = "risky"
match = { risk_scores = ["high", "Medium"] }
deny = "Close the incident first"

[[policy.rules]]
name = "servers"
match = { computer_dns_names = ["srv-*", "*.prod.example", "*sql*", "kiosk1.example"] }
approvals_required = 3

[[policy.rules]]
name = "unhealthy"
match = { health_statuses = ["Inactive"] }
request_ttl = "30m"
"#;

#[test]
fn the_first_rule_whose_match_holds_applies_and_others_fall_to_the_default() {
    let p = load(RULES).unwrap();
    let cases: Vec<(&str, DeviceSnapshot, &str)> = vec![
        (
            "dc with tag",
            device(|d| {
                d.rbac_group_name = Some("Domain Controllers".into());
                d.machine_tags = vec!["other".into(), "tier0".into()];
            }),
            "dc-tagged",
        ),
        (
            "dc without the tag: any key matching is enough",
            device(|d| d.rbac_group_name = Some("Domain Controllers".into())),
            "dc-tagged",
        ),
        ("tag without the group", device(|d| d.machine_tags = vec!["crown-jewel".into()]), "dc-tagged"),
        ("neither the group nor a listed tag", device(|d| d.machine_tags = vec!["other".into()]), "default"),
        (
            "dc, tagged and high risk: the earlier rule wins",
            device(|d| {
                d.rbac_group_name = Some("Domain Controllers".into());
                d.machine_tags = vec!["crown-jewel".into()];
                d.risk_score = Some("High".into());
            }),
            "dc-tagged",
        ),
        ("high risk in another case", device(|d| d.risk_score = Some("HIGH".into())), "risky"),
        ("medium risk", device(|d| d.risk_score = Some("medium".into())), "risky"),
        ("low risk", device(|d| d.risk_score = Some("Low".into())), "default"),
        (
            "group differs only in case",
            device(|d| {
                d.rbac_group_name = Some("domain controllers".into());
                d.machine_tags = vec!["CROWN-JEWEL".into()];
            }),
            "dc-tagged",
        ),
        ("prefix glob", device(|d| d.computer_dns_name = Some("SRV-01.corp".into())), "servers"),
        ("suffix glob", device(|d| d.computer_dns_name = Some("web.prod.example".into())), "servers"),
        ("infix glob", device(|d| d.computer_dns_name = Some("db-sql-2".into())), "servers"),
        ("exact name", device(|d| d.computer_dns_name = Some("Kiosk1.Example".into())), "servers"),
        ("exact name is not a prefix", device(|d| d.computer_dns_name = Some("kiosk1.example.org".into())), "default"),
        ("no name at all", device(|_| {}), "default"),
        ("inactive", device(|d| d.health_status = Some("inactive".into())), "unhealthy"),
        ("active", device(|d| d.health_status = Some("Active".into())), "default"),
    ];
    for (what, d, expected) in cases {
        assert_eq!(p.rule_for(&d).name, expected, "{what}");
    }
}

#[test]
fn an_applied_rule_carries_its_slots_lifetimes_and_isolator_exclusion() {
    let p = load(RULES).unwrap();
    let dc = p.rule_for(&device(|d| {
        d.rbac_group_name = Some("Domain Controllers".into());
        d.machine_tags = vec!["tier0".into()];
    }));
    assert_eq!(
        dc,
        AppliedRule {
            name: "dc-tagged".into(),
            deny: None,
            slots: vec![
                Slot { role: "Release.Approve".into(), count: 1 },
                Slot { role: "Tier0.Owner".into(), count: 1 }
            ],
            request_ttl: Duration::from_secs(12 * 3600),
            approval_ttl: Duration::from_secs(3600),
            exclude_isolator: true,
        }
    );
    let risky = p.rule_for(&device(|d| d.risk_score = Some("High".into())));
    assert_eq!(risky.deny.as_deref(), Some("Close the incident first"));
    assert!(risky.slots.is_empty());
}

#[test]
fn a_rule_without_require_needs_its_count_of_the_approver_role_and_inherits_the_rest() {
    let p = load(RULES).unwrap();
    let servers = p.rule_for(&device(|d| d.computer_dns_name = Some("srv-9".into())));
    assert_eq!(servers.slots, vec![Slot { role: "Release.Approve".into(), count: 3 }]);
    assert_eq!(servers.request_ttl, Duration::from_secs(12 * 3600));
    assert_eq!(servers.approval_ttl, Duration::from_secs(4 * 3600));
    assert!(!servers.exclude_isolator);
    let unhealthy = p.rule_for(&device(|d| d.health_status = Some("Inactive".into())));
    assert_eq!(unhealthy.slots, vec![Slot { role: "Release.Approve".into(), count: 2 }]);
    assert_eq!(unhealthy.request_ttl, Duration::from_secs(30 * 60));
    let default = p.rule_for(&device(|_| {}));
    assert_eq!(&default, p.default_rule());
    assert_eq!(default.slots, vec![Slot { role: "Release.Approve".into(), count: 2 }]);
}

#[test]
fn snapshots_and_applied_rules_survive_a_json_round_trip() {
    let d = device(|d| {
        d.computer_dns_name = Some("dc1.corp".into());
        d.machine_tags = vec!["tier0".into()];
        d.risk_score = Some("Low".into());
    });
    let back: DeviceSnapshot = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
    assert_eq!(back, d);
    let without_tags: DeviceSnapshot = serde_json::from_str(
        r#"{"id":"x","computer_dns_name":null,"rbac_group_name":null,"risk_score":null,"health_status":null}"#,
    )
    .unwrap();
    assert!(without_tags.machine_tags.is_empty());

    let rule = load(RULES).unwrap().default_rule().clone();
    let json = serde_json::to_value(&rule).unwrap();
    assert_eq!(json["request_ttl_ms"], 12 * 3600 * 1000);
    assert_eq!(json["approval_ttl_ms"], 4 * 3600 * 1000);
    assert_eq!(serde_json::from_value::<AppliedRule>(json).unwrap(), rule);
}
