//! The `[policy]` section exactly as written in TOML. These types only mirror the file; they
//! are turned into a [`super::Policy`] by [`PolicyDocument::validate`], and nothing else
//! should look at them.

use super::PolicyError;
use crate::duration::HumanDuration;
use crate::lenient::{lenient_bool, lenient_opt_u32, lenient_u32};
use serde::Deserialize;

/// `[policy]`: the top-level values (which form the default rule), the ordered rules and
/// break-glass. Unknown keys are refused at every level.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyDocument {
    #[serde(deserialize_with = "lenient_u32")]
    pub approvals_required: u32,
    /// A pending release expires this long after it was requested.
    pub request_ttl: HumanDuration,
    /// An approved release not dispatched by then expires.
    pub approval_ttl: HumanDuration,
    #[serde(deserialize_with = "lenient_u32")]
    pub min_comment_len: u32,
    #[serde(deserialize_with = "lenient_bool")]
    pub require_ticket: bool,
    /// How often the daemon expires pending releases past their ttl.
    pub sweep_interval: HumanDuration,
    #[serde(deserialize_with = "lenient_opt_u32")]
    pub max_requests_per_requester_per_hour: Option<u32>,
    #[serde(deserialize_with = "lenient_opt_u32")]
    pub max_approvals_per_approver_per_hour: Option<u32>,
    pub rules: Vec<RuleDocument>,
    pub break_glass: BreakGlassDocument,
    /// What dualkey does about a release outside it: `record` (default) or `reisolate`.
    pub on_bypass: Option<String>,
    /// `IsolationType` of a re-isolation after a bypass: `Full` (default) or `Selective`.
    pub reisolate_type: Option<String>,
}

impl Default for PolicyDocument {
    fn default() -> Self {
        Self {
            approvals_required: 1,
            request_ttl: HumanDuration::from_secs(24 * 3600),
            approval_ttl: HumanDuration::from_secs(4 * 3600),
            min_comment_len: 10,
            require_ticket: false,
            sweep_interval: HumanDuration::from_secs(30),
            max_requests_per_requester_per_hour: None,
            max_approvals_per_approver_per_hour: None,
            rules: Vec::new(),
            break_glass: BreakGlassDocument::default(),
            on_bypass: None,
            reisolate_type: None,
        }
    }
}

/// One `[[policy.rules]]` entry. Unset ttls and `approvals_required` fall back to the top level.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDocument {
    pub name: String,
    #[serde(rename = "match", default)]
    pub matches: MatchDocument,
    pub require: Option<Vec<SlotDocument>>,
    pub approvals_required: Option<u32>,
    pub request_ttl: Option<HumanDuration>,
    pub approval_ttl: Option<HumanDuration>,
    #[serde(default)]
    pub exclude_isolator: bool,
    pub deny: Option<String>,
}

/// `match = { ... }`: any listed value matches, under any key given.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchDocument {
    pub rbac_groups: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    pub risk_scores: Option<Vec<String>>,
    pub health_statuses: Option<Vec<String>>,
    /// Exact names, or with a leading and/or trailing `*` (`"dc*"`, `"*.corp.example"`).
    pub computer_dns_names: Option<Vec<String>>,
}

/// `{ role, count }`: `count` distinct approvers holding `role`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotDocument {
    pub role: String,
    pub count: u32,
}

/// `[policy.break_glass]`, off by default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakGlassDocument {
    #[serde(deserialize_with = "lenient_bool")]
    pub enabled: bool,
    pub role: String,
    pub ratify_within: HumanDuration,
    #[serde(deserialize_with = "lenient_u32")]
    pub min_comment_len: u32,
}

impl Default for BreakGlassDocument {
    fn default() -> Self {
        Self {
            enabled: false,
            role: "Release.BreakGlass".into(),
            ratify_within: HumanDuration::from_secs(3600),
            min_comment_len: 30,
        }
    }
}

impl PolicyDocument {
    /// Reads the `[policy]` table. A type error or unknown key names its path, e.g.
    /// `policy.rules[0].match.tagz is invalid: unknown field ...`.
    pub fn from_toml(value: toml::Value) -> Result<Self, PolicyError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let key = if path == "." { String::new() } else { path };
            PolicyError::top(key, format!("is invalid: {}", e.into_inner().to_string().trim_end()))
        })
    }
}
