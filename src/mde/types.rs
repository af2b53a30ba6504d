//! Wire types of the Defender for Endpoint API, parsed tolerantly.
//!
//! Real MDE answers drift from its documentation (see MDE_API.md section 1, "Discrepancies"):
//! `lastUpdateDateTimeUtc` vs `lastUpdateTimeUtc`, nulls for `machineId` in create responses,
//! undocumented extra fields. Every field except `id` is therefore optional and unknown fields
//! are ignored.

use crate::domain::{MachineId, ReleaseId};
use crate::rules::DeviceSnapshot;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The `status` of a machine action. Unknown values are kept in `Other`, never rejected.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ActionStatus {
    Pending,
    InProgress,
    Succeeded,
    Failed,
    TimeOut,
    Cancelled,
    Other(String),
}

impl ActionStatus {
    /// Every status MDE documents, in its order.
    pub const KNOWN: [ActionStatus; 6] =
        [Self::Pending, Self::InProgress, Self::Succeeded, Self::Failed, Self::TimeOut, Self::Cancelled];

    /// True for the states MDE never leaves: `Succeeded`, `Failed`, `TimeOut`, `Cancelled`.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::TimeOut | Self::Cancelled)
    }

    /// True while MDE still works on the action (`Pending` or `InProgress`).
    pub fn is_active(&self) -> bool {
        matches!(self, Self::Pending | Self::InProgress)
    }

    /// The exact wire spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Pending => "Pending",
            Self::InProgress => "InProgress",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::TimeOut => "TimeOut",
            Self::Cancelled => "Cancelled",
            Self::Other(s) => s,
        }
    }
}

impl From<&str> for ActionStatus {
    fn from(s: &str) -> Self {
        match s {
            "Pending" => Self::Pending,
            "InProgress" => Self::InProgress,
            "Succeeded" => Self::Succeeded,
            "Failed" => Self::Failed,
            "TimeOut" => Self::TimeOut,
            "Cancelled" => Self::Cancelled,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// The `type` of a machine action. Types dualkey does not act on are kept in `Other`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ActionType {
    Isolate,
    Unisolate,
    Other(String),
}

impl ActionType {
    /// The exact wire spelling, as used in `$filter=type eq '...'`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Isolate => "Isolate",
            Self::Unisolate => "Unisolate",
            Self::Other(s) => s,
        }
    }
}

impl From<&str> for ActionType {
    fn from(s: &str) -> Self {
        match s {
            "Isolate" => Self::Isolate,
            "Unisolate" => Self::Unisolate,
            other => Self::Other(other.to_owned()),
        }
    }
}

macro_rules! string_enum_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d).map(|s| Self::from(s.as_str()))
            }
        }
    };
}
string_enum_serde!(ActionStatus);
string_enum_serde!(ActionType);

/// The isolation scope sent as `IsolationType` when isolating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IsolationType {
    Full,
    Selective,
}

/// A MachineAction entity (`GET /api/machineactions/{id}`, the 201 of unisolate/isolate).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineAction {
    pub id: String,
    #[serde(rename = "type", default)]
    pub action_type: Option<ActionType>,
    #[serde(default)]
    pub status: Option<ActionStatus>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub requestor: Option<String>,
    #[serde(default)]
    pub requestor_comment: Option<String>,
    #[serde(default)]
    pub machine_id: Option<String>,
    #[serde(default)]
    pub computer_dns_name: Option<String>,
    #[serde(default)]
    pub creation_date_time_utc: Option<String>,
    /// Real answers say `lastUpdateDateTimeUtc`; old doc examples say `lastUpdateTimeUtc`.
    #[serde(default, alias = "lastUpdateTimeUtc")]
    pub last_update_date_time_utc: Option<String>,
    #[serde(default)]
    pub cancellation_requestor: Option<String>,
    #[serde(default)]
    pub cancellation_comment: Option<String>,
    #[serde(default)]
    pub cancellation_date_time_utc: Option<String>,
    #[serde(default)]
    pub request_source: Option<String>,
}

impl MachineAction {
    /// `creationDateTimeUtc` parsed, if present and valid (any number of fraction digits).
    pub fn created_at(&self) -> Option<OffsetDateTime> {
        parse_timestamp(self.creation_date_time_utc.as_deref()?)
    }

    /// The last update time parsed, whichever field name carried it.
    pub fn last_updated_at(&self) -> Option<OffsetDateTime> {
        parse_timestamp(self.last_update_date_time_utc.as_deref()?)
    }

    /// True when the action is of type `t`.
    pub fn is(&self, t: &ActionType) -> bool {
        self.action_type.as_ref() == Some(t)
    }

    /// The dualkey release this action's comment names by its marker, if any.
    pub fn marked_release(&self) -> Option<ReleaseId> {
        ReleaseId::from_marker(self.requestor_comment.as_deref()?)
    }
}

/// Parses an MDE timestamp such as `2024-10-21T11:25:48.3308187Z` (7 fraction digits).
pub fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// A Machine entity (`GET /api/machines/{id}`). It carries no isolation state: that can only
/// be derived from the machine's Isolate/Unisolate actions.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    pub id: String,
    #[serde(default)]
    pub computer_dns_name: Option<String>,
    #[serde(default)]
    pub health_status: Option<String>,
    #[serde(default)]
    pub risk_score: Option<String>,
    #[serde(default)]
    pub exposure_level: Option<String>,
    #[serde(default)]
    pub rbac_group_id: Option<i64>,
    #[serde(default)]
    pub rbac_group_name: Option<String>,
    #[serde(default)]
    pub machine_tags: Option<Vec<String>>,
    #[serde(default)]
    pub os_platform: Option<String>,
    #[serde(default)]
    pub aad_device_id: Option<String>,
    #[serde(default)]
    pub first_seen: Option<String>,
    #[serde(default)]
    pub last_seen: Option<String>,
}

impl Machine {
    /// The fields release rules match on, for the machine asked for as `id`.
    pub fn snapshot(self, id: &MachineId) -> DeviceSnapshot {
        DeviceSnapshot {
            id: id.as_str().to_string(),
            computer_dns_name: self.computer_dns_name,
            rbac_group_name: self.rbac_group_name,
            machine_tags: self.machine_tags.unwrap_or_default(),
            risk_score: self.risk_score,
            health_status: self.health_status,
        }
    }
}

/// An OData collection answer: `{"@odata.context": ..., "value": [...]}`, with
/// `@odata.nextLink` when more pages follow.
#[derive(Debug, Clone, Deserialize)]
pub struct ODataList<T> {
    pub value: Vec<T>,
    /// The URL of the next page, when this one is not the last.
    #[serde(rename = "@odata.nextLink", default)]
    pub next_link: Option<String>,
}

/// MDE's error body: `{"error":{"code","message","target"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MdeErrorBody {
    pub error: MdeErrorDetail,
}

/// The inside of [`MdeErrorBody`]; `target` is a fresh GUID per response, for tracking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MdeErrorDetail {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_create_response_parses_with_unknown_fields_and_nulls() {
        let body = r#"{
          "@odata.context": "https://api.securitycenter.microsoft.com/api/$metadata#MachineActions/$entity",
          "id": "6b001073-5500-4205-8287-6f1184936f67", "type": "Isolate", "title": null,
          "requestor": "Integration MSGraph Security API", "requestorComment": "c",
          "status": "Pending", "machineId": null, "computerDnsName": null,
          "creationDateTimeUtc": "2024-10-21T11:25:48.3308187Z",
          "lastUpdateDateTimeUtc": "2024-10-21T11:25:48.330819Z",
          "cancellationRequestor": null, "errorHResult": 0, "scope": null,
          "externalId": null, "requestSource": "PublicApi", "relatedFileInfo": null,
          "commands": [], "troubleshootInfo": null }"#;
        let a: MachineAction = serde_json::from_str(body).unwrap();
        assert_eq!(a.status, Some(ActionStatus::Pending));
        assert_eq!(a.action_type, Some(ActionType::Isolate));
        assert_eq!(a.machine_id, None);
        let created = a.created_at().unwrap();
        assert_eq!(created.nanosecond(), 330_818_700);
        assert!(a.last_updated_at().is_some());
    }

    #[test]
    fn the_old_last_update_field_name_is_accepted() {
        let body = r#"{"id":"b89e","type":"Unisolate","status":"Succeeded",
            "lastUpdateTimeUtc":"2017-12-04T12:12:18.9725659Z"}"#;
        let a: MachineAction = serde_json::from_str(body).unwrap();
        assert_eq!(a.last_update_date_time_utc.as_deref(), Some("2017-12-04T12:12:18.9725659Z"));
        assert!(a.status.unwrap().is_final());
    }

    #[test]
    fn nulls_everywhere_but_id_parse_and_unknown_status_is_kept() {
        let all_null = r#"{"id":"x","type":null,"status":null,"requestor":null,
            "creationDateTimeUtc":null,"lastUpdateDateTimeUtc":null}"#;
        let a: MachineAction = serde_json::from_str(all_null).unwrap();
        assert_eq!(a.status, None);
        let odd: MachineAction = serde_json::from_str(r#"{"id":"y","status":"Queued"}"#).unwrap();
        assert_eq!(odd.status, Some(ActionStatus::Other("Queued".into())));
        assert!(!odd.status.unwrap().is_final());
        assert!(serde_json::from_str::<MachineAction>(r#"{"status":"Pending"}"#).is_err());
    }

    #[test]
    fn a_machine_parses_without_any_isolation_field() {
        let body = r#"{"id":"1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
            "computerDnsName":"mymachine1.contoso.com","healthStatus":"Active",
            "riskScore":"Low","exposureLevel":null,"rbacGroupId":140,
            "rbacGroupName":"The-A-Team","machineTags":["test tag"],"ipAddresses":[]}"#;
        let m: Machine = serde_json::from_str(body).unwrap();
        assert_eq!(m.rbac_group_name.as_deref(), Some("The-A-Team"));
        assert_eq!(m.machine_tags, Some(vec!["test tag".to_owned()]));
    }
}
