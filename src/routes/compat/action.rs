//! A release shown as MDE's MachineAction entity: the fields, their order and their spelling
//! as real MDE answers (MDE_API.md, "Facts a faithful fake MDE server must reproduce"), and
//! the one mapping of a release's status to MDE's action status.

use crate::clock::Timestamp;
use crate::domain::{Release, ReleaseStatus};
use crate::mde::{ActionStatus, odata_datetime};
use serde::Serialize;

/// What a release's MDE status is: `Pending` while it waits for approval, `InProgress` from
/// approval until MDE has finished, then MDE's own final status; a release that never reached
/// MDE (rejected, cancelled, expired) is `Cancelled`, one that failed before MDE gave it an
/// action `Failed`. A break-glass release isolated again afterwards did succeed at unisolating.
pub(super) fn status_of(r: &Release) -> ActionStatus {
    use ReleaseStatus::*;
    match r.status {
        Pending => ActionStatus::Pending,
        Approved | Dispatching | Dispatched => ActionStatus::InProgress,
        Succeeded | Reisolated => ActionStatus::Succeeded,
        Rejected | Cancelled | Expired => ActionStatus::Cancelled,
        Failed => match r.mde_action_status.as_deref().map(ActionStatus::from) {
            Some(s @ (ActionStatus::TimeOut | ActionStatus::Cancelled)) => s,
            _ => ActionStatus::Failed,
        },
    }
}

/// A MachineAction of type `Unisolate` for one release.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = MachineAction)]
#[serde(rename_all = "camelCase")]
pub(super) struct MachineActionView {
    /// Only on a single entity, as MDE writes it.
    #[serde(rename = "@odata.context", skip_serializing_if = "Option::is_none")]
    pub odata_context: Option<String>,
    /// The release's id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Always `Unisolate`.
    #[serde(rename = "type")]
    #[schema(value_type = String, pattern = "^Unisolate$")]
    pub action_type: &'static str,
    /// Always null.
    pub title: Option<String>,
    /// The principal who requested the release.
    pub requestor: String,
    pub requestor_comment: String,
    #[schema(schema_with = action_status)]
    pub status: ActionStatus,
    /// 40 lower-case hexadecimal characters.
    #[schema(pattern = "^[0-9a-f]{40}$")]
    pub machine_id: String,
    /// As MDE described the device when the release was requested.
    pub computer_dns_name: Option<String>,
    /// MDE's timestamps: UTC, seven decimals (`2026-12-03T08:12:18.9720000Z`).
    #[schema(format = DateTime)]
    pub creation_date_time_utc: String,
    /// When the release last changed.
    #[schema(format = DateTime)]
    pub last_update_date_time_utc: String,
    /// Who rejected or cancelled the release (null when it expired or was not stopped).
    pub cancellation_requestor: Option<String>,
    pub cancellation_comment: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub cancellation_date_time_utc: Option<String>,
    /// Always 0.
    pub error_h_result: i64,
    /// Always null.
    pub scope: Option<String>,
    /// The id of the Unisolate action dualkey made in MDE, once it has made it.
    pub external_id: Option<String>,
    /// Always `PublicApi`.
    #[schema(value_type = String, pattern = "^PublicApi$")]
    pub request_source: &'static str,
    /// Always null.
    #[schema(schema_with = always_null)]
    pub related_file_info: Option<()>,
    /// Always empty.
    #[schema(schema_with = no_commands)]
    pub commands: [(); 0],
    /// Always null.
    #[schema(schema_with = always_null)]
    pub troubleshoot_info: Option<()>,
}

/// MDE's action statuses ([`ActionStatus::KNOWN`]).
fn action_status() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let names = ActionStatus::KNOWN.iter().map(|s| s.as_str().to_string());
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(names)).build()
}

fn always_null() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::Null).build()
}

fn no_commands() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new().max_items(Some(0)).build()
}

fn time(t: Timestamp) -> String {
    odata_datetime(t.to_datetime())
}

impl MachineActionView {
    /// The release as MDE would show its Unisolate action; `context` is the `@odata.context`
    /// of a single entity.
    pub(super) fn new(r: Release, context: Option<String>) -> Self {
        let status = status_of(&r);
        let never_sent =
            matches!(r.status, ReleaseStatus::Rejected | ReleaseStatus::Cancelled | ReleaseStatus::Expired);
        let (cancelled_by, cancel_comment, cancelled_at) = match r.status {
            _ if !never_sent => (None, None, None),
            ReleaseStatus::Expired => {
                (None, Some("expired in dualkey before it was approved".to_string()), Some(r.updated_at))
            }
            _ => (r.decided_by.clone(), r.decision_comment.clone(), r.decided_at.or(Some(r.updated_at))),
        };
        Self {
            odata_context: context,
            id: r.id.to_string(),
            action_type: "Unisolate",
            title: None,
            requestor: r.requested_by,
            requestor_comment: r.comment,
            status,
            machine_id: r.machine_id.to_string(),
            computer_dns_name: r.decided_under.and_then(|d| d.device.computer_dns_name),
            creation_date_time_utc: time(r.requested_at),
            last_update_date_time_utc: time(r.updated_at.max(r.requested_at)),
            cancellation_requestor: cancelled_by,
            cancellation_comment: cancel_comment,
            cancellation_date_time_utc: cancelled_at.map(time),
            error_h_result: 0,
            scope: None,
            external_id: r.mde_action_id,
            request_source: "PublicApi",
            related_file_info: None,
            commands: [],
            troubleshoot_info: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MachineId, ReleaseId};

    fn release(status: ReleaseStatus, mde: Option<&str>) -> Release {
        Release {
            id: ReleaseId::new(),
            machine_id: MachineId::parse(&"ab".repeat(20)).unwrap(),
            comment: "reimaged and scanned clean".into(),
            ticket: None,
            status,
            requested_by: "alice".into(),
            requested_at: Timestamp::from_unix_ms(1_000),
            expires_at: Timestamp::from_unix_ms(9_000),
            updated_at: Timestamp::from_unix_ms(2_000),
            approvals_required: 1,
            approved_at: None,
            decided_by: Some("bob".into()),
            decided_at: Some(Timestamp::from_unix_ms(1_500)),
            decision_comment: Some("not yet".into()),
            mde_action_id: None,
            mde_action_status: mde.map(str::to_string),
            attempts: 0,
            last_error: None,
            approvals: vec![],
            decided_under: None,
            break_glass: None,
            batch_id: None,
        }
    }

    #[test]
    fn every_release_status_has_the_mde_status_a_poller_expects() {
        use ReleaseStatus::*;
        for (status, mde, want) in [
            (Pending, None, "Pending"),
            (Approved, None, "InProgress"),
            (Dispatching, None, "InProgress"),
            (Dispatched, Some("Pending"), "InProgress"),
            (Succeeded, Some("Succeeded"), "Succeeded"),
            (Reisolated, Some("Succeeded"), "Succeeded"),
            (Failed, Some("Failed"), "Failed"),
            (Failed, Some("TimeOut"), "TimeOut"),
            (Failed, Some("Cancelled"), "Cancelled"),
            (Failed, None, "Failed"),
            (Rejected, None, "Cancelled"),
            (Cancelled, None, "Cancelled"),
            (Expired, None, "Cancelled"),
        ] {
            assert_eq!(status_of(&release(status, mde)).as_str(), want, "{status} with MDE {mde:?}");
        }
    }

    #[test]
    fn the_entity_has_mdes_field_names_order_and_timestamps() {
        let text =
            serde_json::to_string(&MachineActionView::new(release(ReleaseStatus::Rejected, None), None)).unwrap();
        let at = |key: &str| text.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("{key} in {text}"));
        let order = ["id", "type", "title", "requestor", "requestorComment", "status", "machineId", "commands"];
        assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["creationDateTimeUtc"], "1970-01-01T00:00:01.0000000Z");
        assert_eq!(v["lastUpdateDateTimeUtc"], "1970-01-01T00:00:02.0000000Z");
        assert_eq!((&v["cancellationRequestor"], &v["cancellationComment"]), (&"bob".into(), &"not yet".into()));
        assert_eq!(v["commands"], serde_json::json!([]));
        let pending =
            serde_json::to_value(MachineActionView::new(release(ReleaseStatus::Pending, None), None)).unwrap();
        assert!(pending["cancellationRequestor"].is_null() && pending["cancellationDateTimeUtc"].is_null());
    }
}
