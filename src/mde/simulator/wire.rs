//! The exact JSON the simulator answers with: field names and order from real MDE captures
//! (MDE_API.md section 1), 7-digit UTC timestamps, and both error shapes.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use super::config::SeedMachine;
use crate::mde::query::odata_datetime;
use crate::mde::types::{ActionStatus, ActionType, MdeErrorBody, MdeErrorDetail};

/// `2024-10-21T11:25:48.3308187Z`: UTC, 7 fraction digits, `Z`, as MDE writes them.
pub(super) fn timestamp(t: OffsetDateTime) -> String {
    odata_datetime(t)
}

/// `{"error":{"code","message","target"}}` with a fresh GUID as `target`.
pub(super) fn mde_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = MdeErrorBody {
        error: MdeErrorDetail {
            code: Some(code.to_owned()),
            message: Some(message.to_owned()),
            target: Some(uuid::Uuid::new_v4().to_string()),
        },
    };
    (status, Json(body)).into_response()
}

/// An error answer, boxed so that `Result<_, Reject>` stays small.
pub(super) struct Reject(Box<Response>);

impl From<Response> for Reject {
    fn from(response: Response) -> Self {
        Self(Box::new(response))
    }
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// [`mde_error`] as a [`Reject`].
pub(super) fn reject(status: StatusCode, code: &str, message: &str) -> Reject {
    mde_error(status, code, message).into()
}

/// Entra's token error body: `error`, `error_description` starting `AADSTS<n>:`, and the
/// tracking fields Entra adds.
pub(super) fn entra_error(status: StatusCode, error: &str, aadsts: u32, description: &str) -> Response {
    let trace_id = uuid::Uuid::new_v4();
    let correlation_id = uuid::Uuid::new_v4();
    let now = timestamp(OffsetDateTime::now_utc());
    let description = if aadsts == 0 {
        description.to_owned()
    } else {
        format!("AADSTS{aadsts}: {description} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {now}")
    };
    let body = json!({
        "error": error,
        "error_description": description,
        "error_codes": [aadsts],
        "timestamp": now,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
    });
    (status, Json(body)).into_response()
}

/// A MachineAction in the field set and order of real create/get answers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireAction {
    #[serde(rename = "@odata.context", skip_serializing_if = "Option::is_none")]
    pub odata_context: Option<String>,
    pub id: String,
    #[serde(rename = "type")]
    pub action_type: ActionType,
    pub title: Option<String>,
    pub requestor: String,
    pub requestor_comment: String,
    pub status: ActionStatus,
    pub machine_id: String,
    pub computer_dns_name: String,
    pub creation_date_time_utc: String,
    pub last_update_date_time_utc: String,
    pub cancellation_requestor: Option<String>,
    pub cancellation_comment: Option<String>,
    pub cancellation_date_time_utc: Option<String>,
    pub error_h_result: i64,
    pub scope: Option<String>,
    pub external_id: Option<String>,
    pub request_source: &'static str,
    pub related_file_info: Option<serde_json::Value>,
    pub commands: Vec<serde_json::Value>,
    pub troubleshoot_info: Option<serde_json::Value>,
}

/// A Machine entity as `GET /api/machines/{id}` answers it (`get-machine-by-id.md` fields),
/// with `@odata.context` only when it stands alone. Like MDE's, it has no isolation field:
/// isolation shows only in machine actions.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireMachine<'a> {
    #[serde(rename = "@odata.context", skip_serializing_if = "Option::is_none")]
    pub odata_context: Option<String>,
    pub id: &'a str,
    pub computer_dns_name: &'a str,
    pub first_seen: &'static str,
    pub last_seen: String,
    pub os_platform: &'static str,
    pub version: &'static str,
    pub os_processor: &'static str,
    pub last_ip_address: &'static str,
    pub last_external_ip_address: &'static str,
    pub os_build: u32,
    pub health_status: &'a str,
    pub rbac_group_id: i64,
    pub rbac_group_name: &'a str,
    pub risk_score: &'a str,
    pub exposure_level: &'a str,
    pub is_aad_joined: bool,
    pub aad_device_id: Option<&'a str>,
    pub machine_tags: &'a [String],
}

/// `m` as the API shows it at `now`; `context` is the per-entity `@odata.context`, if any.
pub(super) fn machine_body(m: &SeedMachine, context: Option<String>, now: OffsetDateTime) -> WireMachine<'_> {
    WireMachine {
        odata_context: context,
        id: &m.id,
        computer_dns_name: &m.computer_dns_name,
        first_seen: "2024-01-15T08:30:12.1234567Z",
        last_seen: timestamp(now),
        os_platform: "Windows11",
        version: "23H2",
        os_processor: "x64",
        last_ip_address: "10.0.0.12",
        last_external_ip_address: "203.0.113.7",
        os_build: 22631,
        health_status: &m.health_status,
        rbac_group_id: m.rbac_group_id,
        rbac_group_name: &m.rbac_group_name,
        risk_score: &m.risk_score,
        exposure_level: &m.exposure_level,
        is_aad_joined: true,
        aad_device_id: None,
        machine_tags: &m.machine_tags,
    }
}

/// An OData collection: `@odata.context`, `value`, and `@odata.nextLink` while more follow.
#[derive(Debug, Serialize)]
pub(super) struct WireList<T> {
    #[serde(rename = "@odata.context")]
    pub odata_context: String,
    pub value: Vec<T>,
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_seven_fraction_digits_and_a_z() {
        let t = time::macros::datetime!(2024-10-21 11:25:48.33081870 UTC);
        assert_eq!(timestamp(t), "2024-10-21T11:25:48.3308187Z");
    }
}
