//! The policy in plain words, for `dualkey policy check`.

use super::slots::seats;
use super::{AppliedRule, Matcher, Policy, Slot};
use std::time::Duration;

fn quoted_or(values: &[String]) -> String {
    values.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(" or ")
}

fn and_list(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl Matcher {
    /// `in RBAC group "A" or tagged "x" or "y"`: each key given, joined with "or".
    pub fn describe(&self) -> String {
        let keys: [(&str, &[String]); 5] = [
            ("in RBAC group", &self.rbac_groups),
            ("tagged", &self.tags),
            ("with risk score", &self.risk_scores),
            ("with health status", &self.health_statuses),
            ("named", &self.computer_dns_names),
        ];
        let parts: Vec<String> =
            keys.iter().filter(|(_, v)| !v.is_empty()).map(|(what, v)| format!("{what} {}", quoted_or(v))).collect();
        parts.join(" or ")
    }
}

fn slots(s: &[Slot]) -> String {
    let total = seats(s);
    let parts: Vec<String> = s
        .iter()
        .enumerate()
        .map(|(i, slot)| match (i, slot.count) {
            (0, 1) => format!("1 approver with {}", slot.role),
            (0, n) => format!("{n} approvers with {}", slot.role),
            (_, n) => format!("{n} with {}", slot.role),
        })
        .collect();
    let who = if total == 1 { "who is not the requester" } else { "none of them the requester" };
    format!("{}, {who}", and_list(&parts))
}

impl AppliedRule {
    /// What the rule demands, after "devices ...": `need 1 approver with R, who is not the
    /// requester; requests expire after 2h; approvals expire after 4h.` or `are refused: "..."`.
    pub fn describe_outcome(&self) -> String {
        if let Some(reason) = &self.deny {
            return format!("are refused: {reason:?}");
        }
        let isolator = if self.exclude_isolator { "; whoever isolated the device may not approve" } else { "" };
        format!(
            "need {}{isolator}; requests expire after {}; approvals expire after {}.",
            slots(&self.slots),
            human(self.request_ttl),
            human(self.approval_ttl)
        )
    }
}

impl Policy {
    /// One line per rule in the order they are tried, then the default rule, comment and
    /// ticket requirements, velocity guards and break-glass. Names every role, count and lifetime.
    pub fn describe(&self) -> String {
        let mut lines: Vec<String> = self
            .rules
            .iter()
            .map(|r| {
                format!("rule {:?}: devices {} {}", r.applied.name, r.matcher.describe(), r.applied.describe_outcome())
            })
            .collect();
        let which = if self.rules.is_empty() {
            "rule \"default\": all devices"
        } else {
            "otherwise (rule \"default\"): devices"
        };
        lines.push(format!("{which} {}", self.default_rule.describe_outcome()));
        let ticket = if self.require_ticket { "a ticket is required" } else { "a ticket is optional" };
        lines.push(format!("comments need at least {} characters; {ticket}.", self.min_comment_len));
        let guard = |limit: Option<u32>, what: &str| match limit {
            Some(n) => format!("at most {n} {what} per hour"),
            None => format!("no limit on {what} per hour"),
        };
        lines.push(format!(
            "velocity: {}; {}.",
            guard(self.max_requests_per_requester_per_hour, "requests per requester"),
            guard(self.max_approvals_per_approver_per_hour, "approvals per approver")
        ));
        lines.push(match &self.break_glass {
            None => "break-glass: off.".to_string(),
            Some(bg) => format!(
                "break-glass: on; a holder of {} may release a device alone with a comment of at least {} characters; \
                 a distinct approver must ratify it within {}, or dualkey isolates the device again.",
                bg.role,
                bg.min_comment_len,
                human(bg.ratify_within)
            ),
        });
        lines.join("\n")
    }
}
