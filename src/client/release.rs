//! A release as the client reads it from the API: its own types, not the server's, so the
//! client keeps working across server versions.

use serde::Deserialize;

/// A release as the API shows it, only the parts printed here. Every field has a default and
/// unknown fields are ignored, so an older or newer server's answer still prints.
#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub(crate) struct Release {
    pub(super) id: String,
    pub(super) machine_id: String,
    pub(super) status: String,
    pub(super) comment: String,
    pub(super) ticket: Option<String>,
    pub(super) requested_by: String,
    pub(super) requested_at: String,
    pub(super) expires_at: String,
    pub(super) approvals_required: u32,
    pub(super) approvals: Vec<Approval>,
    pub(super) decided_by: Option<String>,
    pub(super) decided_at: Option<String>,
    pub(super) decision_comment: Option<String>,
    pub(super) mde_action_id: Option<String>,
    pub(super) mde_action_status: Option<String>,
    pub(super) attempts: u32,
    pub(super) last_error: Option<String>,
    pub(super) policy: Option<Policy>,
    pub(super) break_glass: Option<BreakGlass>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub(super) struct Approval {
    pub(super) approver: String,
    pub(super) comment: Option<String>,
    pub(super) at: String,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub(super) struct Policy {
    pub(super) rule: String,
    pub(super) policy_hash: Option<String>,
    pub(super) slots: Vec<Slot>,
    pub(super) isolated_by: Option<String>,
    pub(super) device: Option<Device>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub(super) struct Slot {
    pub(super) role: String,
    pub(super) count: u32,
    pub(super) filled_by: Vec<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub(super) struct Device {
    pub(super) computer_dns_name: Option<String>,
    pub(super) rbac_group_name: Option<String>,
    pub(super) machine_tags: Vec<String>,
    pub(super) risk_score: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub(super) struct BreakGlass {
    pub(super) ratify_by: String,
    pub(super) ratified_by: Option<String>,
    pub(super) reisolated_at: Option<String>,
}

impl Release {
    /// The device's DNS name as MDE gave it at request time, else its machine id.
    pub(super) fn device_name(&self) -> &str {
        let name = self.policy.as_ref().and_then(|p| p.device.as_ref()).and_then(|d| d.computer_dns_name.as_deref());
        name.unwrap_or(&self.machine_id)
    }

    /// Seats filled and needed, e.g. `1/2`.
    pub(super) fn slots(&self) -> String {
        let slots = self.policy.as_ref().map(|p| p.slots.as_slice()).unwrap_or_default();
        let filled: usize = slots.iter().map(|s| s.filled_by.len().min(s.count as usize)).sum();
        format!("{filled}/{}", self.approvals_required)
    }
}
