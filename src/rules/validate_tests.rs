//! Table tests for loading and validating `[policy]`, and the `load` helper the other tests share.

use crate::rules::{Policy, PolicyDocument, PolicyError, rule_line};
use std::time::Duration;

/// Reads `[policy]` from a whole settings file, as the lead's loader will, and validates it
/// against the approver role `Release.Approve`.
pub(crate) fn load(text: &str) -> Result<Policy, PolicyError> {
    let mut table: toml::Table = toml::from_str(text).expect("test TOML parses");
    let section = table.remove("policy").unwrap_or_else(|| toml::Value::Table(toml::Table::new()));
    PolicyDocument::from_toml(section)?.validate("Release.Approve")
}

fn rule(body: &str) -> String {
    format!("[policy]\n[[policy.rules]]\n{body}\n")
}

const MATCH: &str = r#"match = { tags = ["t"] }"#;

#[test]
fn an_absent_section_gives_the_documented_defaults() {
    let p = load("").unwrap();
    assert_eq!(p.approver_role(), "Release.Approve");
    assert_eq!(p.default_rule().name, "default");
    assert_eq!(p.default_rule().slots[0].count, 1);
    assert_eq!(p.default_rule().request_ttl, Duration::from_secs(24 * 3600));
    assert_eq!(p.default_rule().approval_ttl, Duration::from_secs(4 * 3600));
    assert!(!p.default_rule().exclude_isolator);
    assert_eq!(p.min_comment_len(), 10);
    assert!(!p.require_ticket());
    assert_eq!(p.sweep_interval(), Duration::from_secs(30));
    assert_eq!(p.max_requests_per_requester_per_hour(), None);
    assert_eq!(p.max_approvals_per_approver_per_hour(), None);
    assert!(p.rules().is_empty());
    assert!(p.break_glass().is_none());
}

#[test]
fn top_level_values_may_arrive_as_strings_from_the_environment() {
    let p = load(
        r#"[policy]
approvals_required = "2"
min_comment_len = " 15 "
require_ticket = "yes"
max_requests_per_requester_per_hour = "5"
max_approvals_per_approver_per_hour = ""
"#,
    )
    .unwrap();
    assert_eq!(p.default_rule().slots[0].count, 2);
    assert_eq!(p.min_comment_len(), 15);
    assert!(p.require_ticket());
    assert_eq!(p.max_requests_per_requester_per_hour(), Some(5));
    assert_eq!(p.max_approvals_per_approver_per_hour(), None);
}

#[test]
fn break_glass_is_present_only_when_enabled() {
    let p = load("[policy.break_glass]\nenabled = true\nratify_within = \"2h\"\n").unwrap();
    let bg = p.break_glass().unwrap();
    assert_eq!(bg.role, "Release.BreakGlass");
    assert_eq!(bg.ratify_within, Duration::from_secs(7200));
    assert_eq!(bg.min_comment_len, 30);
}

#[test]
fn each_invalid_policy_is_refused_with_a_reason_naming_the_key() {
    let two_rules = |a: &str, b: &str| format!("[policy]\n[[policy.rules]]\n{a}\n[[policy.rules]]\n{b}\n");
    let cases: Vec<(String, &str)> = vec![
        ("[policy]\ncolour = 1".into(), "policy.colour is invalid: unknown field `colour`"),
        (
            rule(&format!("name = \"a\"\n{MATCH}\nrequires = []")),
            "policy.rules[0].requires is invalid: unknown field `requires`",
        ),
        (
            rule("name = \"a\"\nmatch = { tagz = [\"t\"] }"),
            "policy.rules[0].match.tagz is invalid: unknown field `tagz`",
        ),
        (
            rule(&format!("name = \"a\"\n{MATCH}\nrequire = [{{ role = \"R\", count = 1, extra = 1 }}]")),
            "policy.rules[0].require[0].extra is invalid: unknown field `extra`",
        ),
        ("[policy.break_glass]\nenable = true".into(), "policy.break_glass.enable is invalid: unknown field `enable`"),
        ("[policy]\napprovals_required = 0".into(), "policy.approvals_required must be between 1 and 20"),
        ("[policy]\napprovals_required = 21".into(), "policy.approvals_required must be between 1 and 20"),
        ("[policy]\nrequest_ttl = \"0s\"".into(), "policy.request_ttl must be at least 1m"),
        ("[policy]\napproval_ttl = \"0s\"".into(), "policy.approval_ttl must be at least 1m"),
        ("[policy]\nsweep_interval = \"0s\"".into(), "policy.sweep_interval must be more than 0"),
        ("[policy]\nmin_comment_len = 0".into(), "policy.min_comment_len must be between 1 and 1000"),
        (
            "[policy]\nmax_requests_per_requester_per_hour = 0".into(),
            "policy.max_requests_per_requester_per_hour must be at least 1",
        ),
        (
            "[policy]\nmax_approvals_per_approver_per_hour = 0".into(),
            "policy.max_approvals_per_approver_per_hour must be at least 1",
        ),
        ("[policy.break_glass]\nratify_within = \"0s\"".into(), "policy.break_glass.ratify_within must be more than 0"),
        (
            "[policy.break_glass]\nrole = \"Release.Approve\"".into(),
            "policy.break_glass.role must differ from the approver role \"Release.Approve\"",
        ),
        (
            "[policy.break_glass]\nrole = \"Break Glass\"".into(),
            "policy.break_glass.role \"Break Glass\" may only contain",
        ),
        (
            "[policy.break_glass]\nmin_comment_len = 0".into(),
            "policy.break_glass.min_comment_len must be between 1 and 1000",
        ),
        (rule(&format!("name = \"\"\n{MATCH}")), "policy.rules[0] \"\": name must not be empty"),
        (rule(&format!("name = \"  \"\n{MATCH}")), "policy.rules[0] \"  \": name must not be empty"),
        (rule(&format!("name = \"tier 0\"\n{MATCH}")), "policy.rules[0] \"tier 0\": name may only contain"),
        (rule(&format!("name = \"Default\"\n{MATCH}")), "policy.rules[0] \"Default\": name \"default\" is reserved"),
        (
            two_rules(&format!("name = \"a\"\n{MATCH}"), &format!("name = \"A\"\n{MATCH}")),
            "policy.rules[1] \"A\": name is already used by policy.rules[0]",
        ),
        (rule("name = \"a\""), "policy.rules[0] \"a\": match must name at least one of"),
        (rule("name = \"a\"\nmatch = {}"), "policy.rules[0] \"a\": match must name at least one of"),
        (rule("name = \"a\"\nmatch = { tags = [] }"), "policy.rules[0] \"a\": match.tags must list at least one value"),
        (
            rule("name = \"a\"\nmatch = { rbac_groups = [\"x\", \" \"] }"),
            "policy.rules[0] \"a\": match.rbac_groups[1] must not be empty",
        ),
        (
            rule("name = \"a\"\nmatch = { risk_scores = [\"Hihg\"] }"),
            "policy.rules[0] \"a\": match.risk_scores[0] \"Hihg\" is not one of MDE's values",
        ),
        (
            rule("name = \"a\"\nmatch = { health_statuses = [\"Dead\"] }"),
            "policy.rules[0] \"a\": match.health_statuses[0] \"Dead\" is not one of",
        ),
        (
            rule("name = \"a\"\nmatch = { computer_dns_names = [\"*\"] }"),
            "policy.rules[0] \"a\": match.computer_dns_names[0] \"*\" would match every device",
        ),
        (
            rule("name = \"a\"\nmatch = { computer_dns_names = [\"dc*.corp\"] }"),
            "policy.rules[0] \"a\": match.computer_dns_names[0] \"dc*.corp\": `*` may only begin or end",
        ),
        (
            rule(&format!("name = \"a\"\n{MATCH}\nrequire = []")),
            "policy.rules[0] \"a\": require must list at least one",
        ),
        (
            rule(&format!(
                "name = \"a\"\n{MATCH}\nrequire = [{{ role = \"R\", count = 1 }}, {{ role = \"S\", count = 0 }}]"
            )),
            "policy.rules[0] \"a\": require[1].count must be between 1 and 20",
        ),
        (
            rule(&format!("name = \"a\"\n{MATCH}\nrequire = [{{ role = \"R\", count = 21 }}]")),
            "policy.rules[0] \"a\": require[0].count must be between 1 and 20",
        ),
        (
            rule(&format!("name = \"a\"\n{MATCH}\nrequire = [{{ role = \" \", count = 1 }}]")),
            "policy.rules[0] \"a\": require[0].role must not be empty",
        ),
        (
            rule(&format!("name = \"a\"\n{MATCH}\nrequire = [{{ role = \"Tier0/Owner\", count = 1 }}]")),
            "policy.rules[0] \"a\": require[0].role \"Tier0/Owner\" may only contain",
        ),
        (
            rule(&format!(
                "name = \"a\"\n{MATCH}\nrequire = [{{ role = \"R\", count = 1 }}, {{ role = \"R\", count = 2 }}]"
            )),
            "policy.rules[0] \"a\": require[1].role \"R\" is already required by require[0]",
        ),
        (
            rule(&format!(
                "name = \"a\"\n{MATCH}\nrequire = [{{ role = \"R\", count = 11 }}, {{ role = \"S\", count = 10 }}]"
            )),
            "policy.rules[0] \"a\": require asks for 21 approvals in all; at most 20",
        ),
        (
            rule(&format!("name = \"a\"\n{MATCH}\nrequire = [{{ role = \"R\", count = 1 }}]\napprovals_required = 2")),
            "policy.rules[0] \"a\": sets both require and approvals_required",
        ),
        (
            rule(&format!("name = \"a\"\n{MATCH}\napprovals_required = 0")),
            "policy.rules[0] \"a\": approvals_required must be between 1 and 20",
        ),
        (
            rule(&format!("name = \"a\"\n{MATCH}\nrequest_ttl = \"0s\"")),
            "policy.rules[0] \"a\": request_ttl must be at least 1m",
        ),
        (
            rule(&format!("name = \"a\"\n{MATCH}\napproval_ttl = \"0s\"")),
            "policy.rules[0] \"a\": approval_ttl must be at least 1m",
        ),
        (
            rule(&format!("name = \"a\"\n{MATCH}\ndeny = \"no\"\nrequire = [{{ role = \"R\", count = 1 }}]")),
            "policy.rules[0] \"a\": has both deny and require",
        ),
        (rule(&format!("name = \"a\"\n{MATCH}\ndeny = \" \"")), "policy.rules[0] \"a\": deny must give the reason"),
        (
            rule(&format!("name = \"a\"\n{MATCH}\ndeny = \"no\"\nexclude_isolator = true")),
            "policy.rules[0] \"a\": exclude_isolator has no effect on a deny rule",
        ),
        (
            rule(&format!("name = \"a\"\n{MATCH}\ndeny = \"no\"\nrequest_ttl = \"2h\"")),
            "policy.rules[0] \"a\": request_ttl has no effect on a deny rule",
        ),
    ];
    for (text, expected) in cases {
        let err = load(&text).expect_err(&text).to_string();
        assert!(err.starts_with(expected), "for\n{text}\nexpected `{expected}...`\n     got `{err}`");
    }
}

#[test]
fn an_invalid_approver_role_is_refused() {
    let err = PolicyDocument::default().validate("Release Approve").unwrap_err().to_string();
    assert!(err.starts_with("policy: the approver role \"Release Approve\" may only contain"), "{err}");
}

#[test]
fn an_error_knows_its_rule_and_the_rule_knows_its_line() {
    let text = "# header\n[policy]\n[[policy.rules]]\nname = \"ok\"\nmatch = { tags = [\"t\"] }\n\n  [[ policy.rules ]] # second\nname = \"bad\"\n";
    let err = load(text).unwrap_err();
    assert_eq!(err.rule_index(), Some(1));
    assert_eq!(rule_line(text, 1), Some(7));
    assert_eq!(rule_line(text, 0), Some(3));
    assert_eq!(rule_line(text, 2), None);
    assert_eq!(load("[policy]\napprovals_required = 0").unwrap_err().rule_index(), None);
}
