//! What a bulk read asks MDE for: the `$filter` of a list, written as MDE's OData expects, and
//! how long a call may wait for its rate budget.

use std::time::Duration;

use time::OffsetDateTime;
use time::macros::format_description;

use super::error::MdeError;
use super::types::{ActionStatus, ActionType};

/// How long a call may wait for its API's rate budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// As long as it takes, in turn with other callers.
    Queue,
    /// At most this long; past it the call is not sent and fails with
    /// [`MdeError::Busy`](super::MdeError::Busy).
    AtMost(Duration),
}

/// A comparison of a date-time field with a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// Strictly after (`gt`).
    Gt,
    /// At or after (`ge`).
    Ge,
    /// Strictly before (`lt`).
    Lt,
}

impl Cmp {
    fn as_str(self) -> &'static str {
        match self {
            Cmp::Gt => "gt",
            Cmp::Ge => "ge",
            Cmp::Lt => "lt",
        }
    }
}

/// A `$filter` over machine actions; every set field is a clause, joined by `and`.
#[derive(Debug, Clone, Default)]
pub struct ActionQuery {
    pub action_type: Option<ActionType>,
    pub machine_id: Option<String>,
    pub status: Option<ActionStatus>,
    pub requestor: Option<String>,
    pub created: Option<(Cmp, OffsetDateTime)>,
}

impl ActionQuery {
    /// The `$filter` text, e.g. `type eq 'Unisolate' and creationDateTimeUtc gt
    /// 2024-10-21T11:25:48.3308187Z`; `None` when no field is set. Fails only for an id or
    /// enum name holding a quote, which no real one does.
    pub fn filter(&self) -> Result<Option<String>, MdeError> {
        let mut clauses = Vec::new();
        if let Some(id) = &self.machine_id {
            clauses.push(format!("machineId eq '{}'", name(id)?));
        }
        if let Some(t) = &self.action_type {
            clauses.push(format!("type eq '{}'", name(t.as_str())?));
        }
        if let Some(s) = &self.status {
            clauses.push(format!("status eq '{}'", name(s.as_str())?));
        }
        if let Some(r) = &self.requestor {
            clauses.push(format!("requestor eq '{}'", text(r)));
        }
        if let Some((cmp, at)) = self.created {
            clauses.push(format!("creationDateTimeUtc {} {}", cmp.as_str(), odata_datetime(at)));
        }
        Ok(joined(clauses))
    }
}

/// A `$filter` over machines; every set field is a clause, joined by `and`.
#[derive(Debug, Clone, Default)]
pub struct MachineQuery {
    pub rbac_group_id: Option<i64>,
    pub health_status: Option<String>,
    pub risk_score: Option<String>,
    pub tag: Option<String>,
}

impl MachineQuery {
    /// The `$filter` text, e.g. `rbacGroupId eq 140 and machineTags/any(t: t eq 'tier0')`;
    /// `None` when no field is set. Fails only for an enum name holding a quote.
    pub fn filter(&self) -> Result<Option<String>, MdeError> {
        let mut clauses = Vec::new();
        if let Some(group) = self.rbac_group_id {
            clauses.push(format!("rbacGroupId eq {group}"));
        }
        if let Some(h) = &self.health_status {
            clauses.push(format!("healthStatus eq '{}'", name(h)?));
        }
        if let Some(r) = &self.risk_score {
            clauses.push(format!("riskScore eq '{}'", name(r)?));
        }
        if let Some(tag) = &self.tag {
            clauses.push(format!("machineTags/any(t: t eq '{}')", text(tag)));
        }
        Ok(joined(clauses))
    }
}

fn joined(clauses: Vec<String>) -> Option<String> {
    (!clauses.is_empty()).then(|| clauses.join(" and "))
}

/// An id or enum name: none can hold a quote, so refuse rather than build a broken filter.
fn name(value: &str) -> Result<&str, MdeError> {
    if value.contains('\'') {
        return Err(MdeError::Config("a quote in a $filter value".into()));
    }
    Ok(value)
}

/// Free text as an OData string body: a quote is written twice.
fn text(value: &str) -> String {
    value.replace('\'', "''")
}

/// `2024-10-21T11:25:48.3308187Z`: UTC, 7 fraction digits, as MDE writes its date-times.
pub(crate) fn odata_datetime(t: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z");
    t.to_offset(time::UtcOffset::UTC).format(&format).unwrap_or_default()
}

/// Percent-encodes everything but unreserved characters and the OData quote. Spaces become
/// `%20`, not the form encoding's `+`: OData examples are written that way.
pub(crate) fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3 / 2);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~'".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn every_set_action_field_is_a_clause_joined_by_and() {
        let q = ActionQuery {
            action_type: Some(ActionType::Unisolate),
            machine_id: Some("1e5bc9d7e413ddd7902c2932e418702b84d0cc07".into()),
            status: Some(ActionStatus::Succeeded),
            requestor: Some("o'brien@contoso.com".into()),
            created: Some((Cmp::Ge, datetime!(2024-10-21 11:25:48.33081870 UTC))),
        };
        assert_eq!(
            q.filter().unwrap().unwrap(),
            "machineId eq '1e5bc9d7e413ddd7902c2932e418702b84d0cc07' and type eq 'Unisolate' \
             and status eq 'Succeeded' and requestor eq 'o''brien@contoso.com' \
             and creationDateTimeUtc ge 2024-10-21T11:25:48.3308187Z"
        );
        assert_eq!(ActionQuery::default().filter().unwrap(), None);
        let quoted = ActionQuery { machine_id: Some("a'b".into()), ..ActionQuery::default() };
        assert!(matches!(quoted.filter(), Err(MdeError::Config(_))));
    }

    #[test]
    fn a_datetime_is_written_in_utc_with_seven_digits_unquoted() {
        let q =
            ActionQuery { created: Some((Cmp::Lt, datetime!(2026-01-02 03:04:05 +02:00))), ..ActionQuery::default() };
        assert_eq!(q.filter().unwrap().unwrap(), "creationDateTimeUtc lt 2026-01-02T01:04:05.0000000Z");
    }

    #[test]
    fn every_set_machine_field_is_a_clause_and_a_tag_is_an_any() {
        let q = MachineQuery {
            rbac_group_id: Some(140),
            health_status: Some("Active".into()),
            risk_score: Some("High".into()),
            tag: Some("it's tier0".into()),
        };
        assert_eq!(
            q.filter().unwrap().unwrap(),
            "rbacGroupId eq 140 and healthStatus eq 'Active' and riskScore eq 'High' \
             and machineTags/any(t: t eq 'it''s tier0')"
        );
        assert_eq!(MachineQuery::default().filter().unwrap(), None);
    }

    #[test]
    fn percent_encoding_keeps_quotes_and_writes_spaces_as_percent_20() {
        assert_eq!(percent_encode("t eq 'a b'/any(x:+)"), "t%20eq%20'a%20b'%2Fany%28x%3A%2B%29");
    }
}
