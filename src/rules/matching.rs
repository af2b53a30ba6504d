//! The device as MDE describes it, and which rule applies to it.

use super::config::MatchDocument;
use super::slots::seats;
use super::{Policy, Slot, millis};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The device fields rules match on, read from `GET /api/machines/{id}` when the release is
/// requested and stored with it, so the decision can be explained later.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceSnapshot {
    pub id: String,
    pub computer_dns_name: Option<String>,
    pub rbac_group_name: Option<String>,
    #[serde(default)]
    pub machine_tags: Vec<String>,
    pub risk_score: Option<String>,
    pub health_status: Option<String>,
}

/// What a release must satisfy: the rule that applied to its device when it was decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedRule {
    /// The rule's name, or `"default"` when no rule matched.
    pub name: String,
    /// `Some(reason)`: the request is refused with this reason, and `slots` is empty.
    pub deny: Option<String>,
    /// Every slot must be filled by distinct approvers, none of them the requester.
    pub slots: Vec<Slot>,
    #[serde(rename = "request_ttl_ms", with = "millis")]
    pub request_ttl: Duration,
    #[serde(rename = "approval_ttl_ms", with = "millis")]
    pub approval_ttl: Duration,
    /// Whoever isolated the device may not approve its release.
    pub exclude_isolator: bool,
}

impl AppliedRule {
    /// Distinct approvals a release under this rule needs: every seat of every slot, and never
    /// fewer than one.
    pub fn approvals_required(&self) -> u32 {
        seats(&self.slots).max(1)
    }
}

/// A rule's match after validation: each list is non-empty or absent (empty), values are
/// sorted and deduplicated without case, and known MDE values use MDE's spelling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Matcher {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) rbac_groups: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) tags: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) risk_scores: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) health_statuses: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) computer_dns_names: Vec<String>,
}

/// `riskScore` values MDE documents; a typo in a deny rule would otherwise never match.
const RISK_SCORES: &[&str] = &["None", "Informational", "Low", "Medium", "High"];
/// `healthStatus` values MDE documents.
const HEALTH_STATUSES: &[&str] =
    &["Active", "Inactive", "ImpairedCommunication", "NoSensorData", "NoSensorDataImpairedCommunication", "Unknown"];

fn fold(s: &str) -> String {
    s.trim().to_lowercase()
}

impl Matcher {
    /// Checks a rule's `match` table; on error returns the key under the rule and the reason.
    pub(super) fn from_document(doc: &MatchDocument) -> Result<Matcher, (String, String)> {
        let m = Matcher {
            rbac_groups: values("rbac_groups", &doc.rbac_groups, |v| Ok(v.trim().to_string()))?,
            tags: values("tags", &doc.tags, |v| Ok(v.trim().to_string()))?,
            risk_scores: values("risk_scores", &doc.risk_scores, |v| known(v, RISK_SCORES))?,
            health_statuses: values("health_statuses", &doc.health_statuses, |v| known(v, HEALTH_STATUSES))?,
            computer_dns_names: values("computer_dns_names", &doc.computer_dns_names, glob)?,
        };
        let keys = [&m.rbac_groups, &m.tags, &m.risk_scores, &m.health_statuses, &m.computer_dns_names];
        if keys.iter().all(|k| k.is_empty()) {
            return Err((
                "match".into(),
                "must name at least one of rbac_groups, tags, risk_scores, health_statuses, computer_dns_names \
                 (the top-level values already form the default rule)"
                    .into(),
            ));
        }
        Ok(m)
    }

    /// True when any listed value matches, under any key given: the device's value (or one of
    /// its tags) equals a listed value, ignoring case and surrounding spaces. A rule that lists
    /// Domain Controllers and the crown-jewel tag covers both kinds of device: for a rule that
    /// asks more of the people approving, matching more devices is the safe reading.
    pub fn holds(&self, d: &DeviceSnapshot) -> bool {
        let one = |list: &[String], value: &Option<String>| {
            value.as_deref().is_some_and(|v| list.iter().any(|x| fold(x) == fold(v)))
        };
        let dns =
            d.computer_dns_name.as_deref().is_some_and(|n| self.computer_dns_names.iter().any(|p| glob_match(p, n)));
        let tags = d.machine_tags.iter().any(|t| self.tags.iter().any(|x| fold(x) == fold(t)));
        one(&self.rbac_groups, &d.rbac_group_name)
            || tags
            || one(&self.risk_scores, &d.risk_score)
            || one(&self.health_statuses, &d.health_status)
            || dns
    }
}

fn values(
    key: &str,
    list: &Option<Vec<String>>,
    check: impl Fn(&str) -> Result<String, String>,
) -> Result<Vec<String>, (String, String)> {
    let Some(list) = list else { return Ok(Vec::new()) };
    if list.is_empty() {
        return Err((format!("match.{key}"), "must list at least one value (or be left out)".into()));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        if v.trim().is_empty() {
            return Err((format!("match.{key}[{i}]"), "must not be empty".into()));
        }
        out.push(check(v).map_err(|reason| (format!("match.{key}[{i}]"), reason))?);
    }
    out.sort_by_key(|v| fold(v));
    out.dedup_by(|a, b| fold(a) == fold(b));
    Ok(out)
}

fn known(v: &str, allowed: &[&str]) -> Result<String, String> {
    allowed
        .iter()
        .find(|a| fold(a) == fold(v))
        .map(|a| a.to_string())
        .ok_or_else(|| format!("{v:?} is not one of MDE's values: {}", allowed.join(", ")))
}

fn glob(v: &str) -> Result<String, String> {
    let v = v.trim();
    let inner = v.strip_prefix('*').unwrap_or(v);
    let inner = inner.strip_suffix('*').unwrap_or(inner);
    if inner.is_empty() {
        return Err(format!("{v:?} would match every device; give part of a name"));
    }
    if inner.contains('*') {
        return Err(format!("{v:?}: `*` may only begin or end a name"));
    }
    Ok(v.to_string())
}

fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (fold(pattern), fold(name));
    match (p.strip_prefix('*'), p.strip_suffix('*')) {
        (Some(rest), Some(_)) => n.contains(rest.strip_suffix('*').unwrap_or(rest)),
        (Some(suffix), None) => n.ends_with(suffix),
        (None, Some(prefix)) => n.starts_with(prefix),
        (None, None) => n == p,
    }
}

impl Policy {
    /// The first rule whose match holds for `device`, else the default rule. Always returns a
    /// rule: a device no rule names is governed by the top-level values.
    pub fn rule_for(&self, device: &DeviceSnapshot) -> AppliedRule {
        self.rules
            .iter()
            .find(|r| r.matcher.holds(device))
            .map(|r| r.applied.clone())
            .unwrap_or_else(|| self.default_rule.clone())
    }
}

#[cfg(test)]
#[path = "matching_tests.rs"]
mod tests;
