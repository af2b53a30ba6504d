//! Turning a [`PolicyDocument`] into a [`Policy`], refusing anything ambiguous or unsafe with a
//! reason that names the rule.

use super::config::{PolicyDocument, RuleDocument};
use super::slots::seats;
use super::{AppliedRule, BreakGlass, Matcher, OnBypass, Policy, ReisolateType, Rule, Slot};
use crate::duration::HumanDuration;
use std::fmt;
use std::time::Duration;

/// Most approvals any rule may demand, across all its slots.
pub(super) const MAX_SLOTS: u32 = 20;

/// Why a policy was refused. Displays as `policy.rules[1] "tier0": require[0].count must be
/// between 1 and 20`, or `policy.approval_ttl must be more than 0` outside the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    rule: Option<(usize, String)>,
    key: String,
    reason: String,
}

impl PolicyError {
    pub(super) fn top(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { rule: None, key: key.into(), reason: reason.into() }
    }

    fn rule(index: usize, name: &str, key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { rule: Some((index, name.to_string())), key: key.into(), reason: reason.into() }
    }

    /// The index in `[[policy.rules]]` of the offending rule, if the error is about one.
    pub fn rule_index(&self) -> Option<usize> {
        self.rule.as_ref().map(|(i, _)| *i)
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.rule, self.key.is_empty()) {
            (Some((i, name)), true) => write!(f, "policy.rules[{i}] {name:?}: {}", self.reason),
            (Some((i, name)), false) => write!(f, "policy.rules[{i}] {name:?}: {} {}", self.key, self.reason),
            (None, true) => write!(f, "policy: {}", self.reason),
            (None, false) => write!(f, "policy.{} {}", self.key, self.reason),
        }
    }
}

impl std::error::Error for PolicyError {}

/// The 1-based line of the `index`-th `[[policy.rules]]` header in `toml_text`, to point
/// start-up errors at the file. `None` when the rules are not written as array-of-tables headers.
pub fn rule_line(toml_text: &str, index: usize) -> Option<usize> {
    toml_text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.split('#').next().unwrap_or("").split_whitespace().collect::<String>() == "[[policy.rules]]")
        .nth(index)
        .map(|(n, _)| n + 1)
}

/// Error constructors for `map_err`: a top-level key, or a key under the rule being checked.
fn top(key: &str) -> impl Fn(String) -> PolicyError + '_ {
    move |reason| PolicyError::top(key, reason)
}

fn at(key: &str) -> impl Fn(String) -> (String, String) + '_ {
    move |reason| (key.to_string(), reason)
}

fn valid_role(role: &str) -> Result<(), String> {
    if role.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if !role.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        return Err(format!("{role:?} may only contain A-Z, a-z, 0-9, '.', '_' and '-'"));
    }
    Ok(())
}

fn count_in_range(n: u32) -> Result<(), String> {
    if (1..=MAX_SLOTS).contains(&n) { Ok(()) } else { Err(format!("must be between 1 and {MAX_SLOTS}")) }
}

fn nonzero(d: HumanDuration) -> Result<Duration, String> {
    if d.get().is_zero() { Err("must be more than 0".into()) } else { Ok(d.get()) }
}

/// Matches the settings tree's rule for `request_ttl`: anything shorter is a typo, not a policy.
fn lifetime(d: HumanDuration) -> Result<Duration, String> {
    if d.get() < Duration::from_secs(60) { Err("must be at least 1m".into()) } else { Ok(d.get()) }
}

fn comment_len(n: u32) -> Result<u32, String> {
    if (1..=1000).contains(&n) { Ok(n) } else { Err("must be between 1 and 1000".into()) }
}

fn guard(limit: Option<u32>) -> Result<Option<u32>, String> {
    match limit {
        Some(0) => Err("must be at least 1 (leave it out for no limit)".into()),
        other => Ok(other),
    }
}

impl PolicyDocument {
    /// Checks everything and builds the [`Policy`]; `approver_role` (from `[auth]`) fills the
    /// default rule and every rule without `require`. The first problem found is returned.
    pub fn validate(&self, approver_role: &str) -> Result<Policy, PolicyError> {
        valid_role(approver_role).map_err(|r| PolicyError::top("", format!("the approver role {r}")))?;
        count_in_range(self.approvals_required).map_err(top("approvals_required"))?;
        let default_rule = AppliedRule {
            name: "default".into(),
            deny: None,
            slots: vec![Slot { role: approver_role.into(), count: self.approvals_required }],
            request_ttl: lifetime(self.request_ttl).map_err(top("request_ttl"))?,
            approval_ttl: lifetime(self.approval_ttl).map_err(top("approval_ttl"))?,
            exclude_isolator: false,
        };
        let min_comment_len = comment_len(self.min_comment_len).map_err(top("min_comment_len"))?;
        let sweep_interval = nonzero(self.sweep_interval).map_err(top("sweep_interval"))?;
        let max_requests =
            guard(self.max_requests_per_requester_per_hour).map_err(top("max_requests_per_requester_per_hour"))?;
        let max_approvals =
            guard(self.max_approvals_per_approver_per_hour).map_err(top("max_approvals_per_approver_per_hour"))?;

        let mut rules: Vec<Rule> = Vec::with_capacity(self.rules.len());
        for (i, doc) in self.rules.iter().enumerate() {
            let err = |key: &str, reason: String| PolicyError::rule(i, &doc.name, key, reason);
            if let Some(j) = rules.iter().position(|r| r.applied.name.eq_ignore_ascii_case(doc.name.trim())) {
                return Err(err("name", format!("is already used by policy.rules[{j}]")));
            }
            rules.push(rule(doc, &default_rule).map_err(|(key, reason)| err(&key, reason))?);
        }

        let bg = &self.break_glass;
        valid_role(&bg.role).map_err(top("break_glass.role"))?;
        if bg.role == approver_role {
            return Err(PolicyError::top(
                "break_glass.role",
                format!("must differ from the approver role {approver_role:?}, or every approver could act alone"),
            ));
        }
        let ratify_within = nonzero(bg.ratify_within).map_err(top("break_glass.ratify_within"))?;
        let bg_comment_len = comment_len(bg.min_comment_len).map_err(top("break_glass.min_comment_len"))?;
        let break_glass =
            bg.enabled.then(|| BreakGlass { role: bg.role.clone(), ratify_within, min_comment_len: bg_comment_len });

        let isolation_type = match self.reisolate_type.as_deref().map(str::trim) {
            None | Some("Full") => ReisolateType::Full,
            Some("Selective") => ReisolateType::Selective,
            Some(other) => {
                return Err(PolicyError::top("reisolate_type", format!("`{other}` is not Full or Selective")));
            }
        };
        let on_bypass = match self.on_bypass.as_deref().map(str::trim) {
            None | Some("record") => {
                if self.reisolate_type.is_some() {
                    return Err(PolicyError::top(
                        "reisolate_type",
                        "only means something with on_bypass = \"reisolate\"",
                    ));
                }
                OnBypass::Record
            }
            Some("reisolate") => OnBypass::Reisolate { isolation_type },
            Some(other) => return Err(PolicyError::top("on_bypass", format!("`{other}` is not record or reisolate"))),
        };
        Ok(Policy {
            approver_role: approver_role.into(),
            min_comment_len,
            require_ticket: self.require_ticket,
            sweep_interval,
            max_requests_per_requester_per_hour: max_requests,
            max_approvals_per_approver_per_hour: max_approvals,
            rules,
            default_rule,
            break_glass,
            on_bypass,
        })
    }
}

/// One rule; errors are `(key under the rule, reason)`.
fn rule(doc: &RuleDocument, default: &AppliedRule) -> Result<Rule, (String, String)> {
    let name = doc.name.trim();
    if name.is_empty() {
        return Err(at("name")("must not be empty".into()));
    }
    if name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        return Err(at("name")("may only contain A-Z, a-z, 0-9, '.', '_' and '-' (at most 64)".into()));
    }
    if name.eq_ignore_ascii_case("default") {
        return Err(at("name")("\"default\" is reserved for the top-level values".into()));
    }
    let matcher = Matcher::from_document(&doc.matches)?;
    let request_ttl = doc.request_ttl.map(lifetime).transpose().map_err(at("request_ttl"))?;
    let approval_ttl = doc.approval_ttl.map(lifetime).transpose().map_err(at("approval_ttl"))?;
    let mut applied = AppliedRule {
        name: name.to_string(),
        deny: None,
        slots: Vec::new(),
        request_ttl: request_ttl.unwrap_or(default.request_ttl),
        approval_ttl: approval_ttl.unwrap_or(default.approval_ttl),
        exclude_isolator: doc.exclude_isolator,
    };
    if let Some(reason) = &doc.deny {
        if doc.require.is_some() {
            return Err(at("")("has both deny and require; a rule either refuses or says who approves".into()));
        }
        let ignored = [
            ("approvals_required", doc.approvals_required.is_some()),
            ("request_ttl", request_ttl.is_some()),
            ("approval_ttl", approval_ttl.is_some()),
            ("exclude_isolator", doc.exclude_isolator),
        ];
        if let Some((key, _)) = ignored.iter().find(|(_, set)| *set) {
            return Err(at(key)("has no effect on a deny rule; remove it".into()));
        }
        if reason.trim().is_empty() {
            return Err(at("deny")("must give the reason shown to the requester".into()));
        }
        applied.deny = Some(reason.trim().to_string());
        return Ok(Rule { matcher, applied });
    }
    applied.slots = match &doc.require {
        None => {
            let count = doc.approvals_required.unwrap_or(default.slots[0].count);
            count_in_range(count).map_err(at("approvals_required"))?;
            vec![Slot { role: default.slots[0].role.clone(), count }]
        }
        Some(_) if doc.approvals_required.is_some() => {
            return Err(at("")("sets both require and approvals_required; use one".into()));
        }
        Some(list) if list.is_empty() => return Err(at("require")("must list at least one { role, count }".into())),
        Some(list) => {
            let mut slots: Vec<Slot> = Vec::with_capacity(list.len());
            for (j, s) in list.iter().enumerate() {
                valid_role(&s.role).map_err(at(&format!("require[{j}].role")))?;
                count_in_range(s.count).map_err(at(&format!("require[{j}].count")))?;
                if let Some(k) = slots.iter().position(|t| t.role == s.role) {
                    let reason = format!("{:?} is already required by require[{k}]; raise its count instead", s.role);
                    return Err(at(&format!("require[{j}].role"))(reason));
                }
                slots.push(Slot { role: s.role.clone(), count: s.count });
            }
            slots
        }
    };
    let total = seats(&applied.slots);
    if total > MAX_SLOTS {
        return Err(at("require")(format!("asks for {total} approvals in all; at most {MAX_SLOTS}")));
    }
    Ok(Rule { matcher, applied })
}
