//! The release policy: which approvals a device needs before it may leave isolation.
//!
//! Pure: no I/O, no database, no clock. The `[policy]` TOML section is read into a
//! [`PolicyDocument`], which [`PolicyDocument::validate`] turns into a [`Policy`]; nothing else
//! builds a `Policy`, so holding one means every rule in it was checked. From a `Policy` the
//! caller gets the [`AppliedRule`] for a [`DeviceSnapshot`], fills its slots with a [`Quorum`],
//! checks the velocity guards, hashes it for the audit chain and describes it in plain words.

mod config;
mod describe;
mod hash;
mod matching;
mod slots;
mod validate;
mod velocity;

#[cfg(test)]
mod example_tests;
#[cfg(test)]
mod validate_tests;

pub use config::{BreakGlassDocument, MatchDocument, PolicyDocument, RuleDocument, SlotDocument};
pub use matching::{AppliedRule, DeviceSnapshot, Matcher};
pub use slots::{Approver, Quorum, SeatRefusal, Slot, SlotState};
pub use validate::{PolicyError, rule_line};
pub use velocity::over_limit;

use serde::Serialize;
use std::time::Duration;

/// A validated release policy. Only [`PolicyDocument::validate`] builds one, so every rule
/// has a unique name, a non-empty match, legal roles and counts, and non-zero lifetimes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    approver_role: String,
    min_comment_len: u32,
    require_ticket: bool,
    #[serde(rename = "sweep_interval_ms", with = "millis")]
    sweep_interval: Duration,
    max_requests_per_requester_per_hour: Option<u32>,
    max_approvals_per_approver_per_hour: Option<u32>,
    rules: Vec<Rule>,
    default_rule: AppliedRule,
    break_glass: Option<BreakGlass>,
    /// Left out of the canonical document at its default, so policies written before it keep
    /// their hash.
    #[serde(skip_serializing_if = "OnBypass::is_record")]
    on_bypass: OnBypass,
}

/// What dualkey does when it finds a device released outside it (`[policy] on_bypass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case", tag = "response")]
pub enum OnBypass {
    /// Record it in the audit trail, list it, count it in readiness, notify.
    #[default]
    Record,
    /// All of that, and isolate the device again once the bypassing action has succeeded.
    Reisolate { isolation_type: ReisolateType },
}

/// The `IsolationType` of a re-isolation after a bypass (`[policy] reisolate_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ReisolateType {
    Full,
    Selective,
}

impl OnBypass {
    fn is_record(&self) -> bool {
        *self == OnBypass::Record
    }

    /// The word stored with a bypass: `record` or `reisolate`.
    pub fn as_str(&self) -> &'static str {
        match self {
            OnBypass::Record => "record",
            OnBypass::Reisolate { .. } => "reisolate",
        }
    }
}

/// One `[[policy.rules]]` entry after validation: when it applies and what it then demands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    #[serde(rename = "match")]
    pub matcher: Matcher,
    pub applied: AppliedRule,
}

/// Break-glass settings, present only when `[policy.break_glass] enabled = true`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakGlass {
    /// Holders of this role may release a device alone; never the approver role.
    pub role: String,
    /// A break-glass release must be ratified by a distinct approver within this; never zero.
    #[serde(rename = "ratify_within_ms", with = "millis")]
    pub ratify_within: Duration,
    pub min_comment_len: u32,
}

impl Policy {
    /// The role that fills the default rule's slot and any rule without `require`.
    pub fn approver_role(&self) -> &str {
        &self.approver_role
    }
    pub fn min_comment_len(&self) -> u32 {
        self.min_comment_len
    }
    pub fn require_ticket(&self) -> bool {
        self.require_ticket
    }
    /// How often expired releases are swept; never zero.
    pub fn sweep_interval(&self) -> Duration {
        self.sweep_interval
    }
    /// `None` means no guard; `Some(n)` is at least 1.
    pub fn max_requests_per_requester_per_hour(&self) -> Option<u32> {
        self.max_requests_per_requester_per_hour
    }
    /// `None` means no guard; `Some(n)` is at least 1.
    pub fn max_approvals_per_approver_per_hour(&self) -> Option<u32> {
        self.max_approvals_per_approver_per_hour
    }
    /// The rules in the order they are tried.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
    /// The rule named `"default"` built from the top-level values; applies when no rule matches.
    pub fn default_rule(&self) -> &AppliedRule {
        &self.default_rule
    }
    /// `None` when break-glass is disabled.
    /// Every role a slot of some rule (the default rule included) asks for: the people who may
    /// approve something under this policy.
    pub fn slot_roles(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .map(|r| &r.applied)
            .chain([self.default_rule()])
            .flat_map(|a| a.slots.iter().map(|s| s.role.as_str()))
    }

    pub fn break_glass(&self) -> Option<&BreakGlass> {
        self.break_glass.as_ref()
    }

    /// What to do about a release outside dualkey.
    pub fn on_bypass(&self) -> OnBypass {
        self.on_bypass
    }
}

/// Durations as whole milliseconds in JSON, so stored rules and the policy hash are plain numbers.
pub(crate) mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
