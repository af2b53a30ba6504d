//! A release batch: one request for many devices. Each device that could be taken is an
//! ordinary release naming the batch; the batch itself keeps what was asked and what was not
//! taken, and never changes.

use super::{BatchId, MachineId, ReleaseId, ReleaseStatus};
use crate::clock::Timestamp;
use serde::{Deserialize, Serialize};

/// The most machine ids one batch may list.
pub const MAX_BATCH_MACHINES: usize = 1000;

/// Why a device asked for in a batch got no release (the code a single request would refuse
/// it with).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    UnknownMachine,
    DeviceNotIsolated,
    ReleaseAlreadyOpen,
    DeniedByPolicy,
}

/// A device of a batch that got no release, and why. Stored with the batch and in its audit
/// entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Refused {
    pub machine_id: String,
    pub code: Refusal,
    pub message: String,
    /// The policy rule that denied it (`denied_by_policy` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl Refused {
    pub fn new(machine_id: &MachineId, code: Refusal, message: impl Into<String>) -> Self {
        Self { machine_id: machine_id.to_string(), code, message: message.into(), rule: None }
    }
}

/// What selected a batch's devices: every isolated device in one of `rbac_groups` or carrying
/// one of `tags` (compared without case). At least one value, none blank.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchSelector {
    pub rbac_groups: Vec<String>,
    pub tags: Vec<String>,
}

/// A stored batch (its releases are read on their own).
#[derive(Debug, Clone)]
pub struct Batch {
    pub id: BatchId,
    pub requested_by: String,
    pub requested_at: Timestamp,
    pub comment: String,
    pub ticket: Option<String>,
    pub selector: Option<BatchSelector>,
    pub refused: Vec<Refused>,
}

/// What a batch decision did to one of its releases: `applied` false with the `code` (and
/// `message`) a single decision of it would have been refused with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Outcome {
    pub release_id: String,
    pub machine_id: String,
    pub applied: bool,
    /// The release's status after the decision.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Outcome {
    pub fn applied(id: ReleaseId, machine_id: &MachineId, status: ReleaseStatus) -> Self {
        Self {
            release_id: id.to_string(),
            machine_id: machine_id.to_string(),
            applied: true,
            status: status.as_str(),
            code: None,
            message: None,
        }
    }

    pub fn refused(
        id: ReleaseId,
        machine_id: &MachineId,
        status: ReleaseStatus,
        code: &'static str,
        message: String,
    ) -> Self {
        Self {
            release_id: id.to_string(),
            machine_id: machine_id.to_string(),
            applied: false,
            status: status.as_str(),
            code: Some(code),
            message: Some(message),
        }
    }
}
