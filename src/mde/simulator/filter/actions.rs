//! `$filter` on machine actions: `eq` on `id`, `status`, `machineId`, `type` and `requestor`
//! (quoted strings, compared without case), and `eq`/`gt`/`ge`/`lt`/`le` on
//! `creationDateTimeUtc` and `lastUpdateDateTimeUtc` against an unquoted date-time, compared
//! as instants.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::parse::{Clause, Literal, Op, clauses};
use super::{Reject, invalid_filter};
use crate::mde::simulator::state::ActionRecord;

/// A parsed action `$filter`: every clause must hold.
#[derive(Debug, Default)]
pub(crate) struct ActionFilter {
    conditions: Vec<Condition>,
}

#[derive(Debug)]
enum Condition {
    Text(TextField, String),
    Time(TimeField, Op, OffsetDateTime),
}

#[derive(Debug, Clone, Copy)]
enum TextField {
    Id,
    Status,
    MachineId,
    Type,
    Requestor,
}

#[derive(Debug, Clone, Copy)]
enum TimeField {
    Created,
    LastUpdated,
}

impl ActionFilter {
    /// Parses `$filter` (none: everything matches); anything unsupported is a 400 `ODataError`.
    pub(crate) fn parse(text: Option<&str>) -> Result<Self, Reject> {
        let Some(text) = text else { return Ok(Self::default()) };
        let conditions = clauses(text).and_then(|c| c.into_iter().map(condition).collect());
        conditions.map(|conditions| Self { conditions }).ok_or_else(|| invalid_filter(text))
    }

    /// True when `action` satisfies every clause at `now` (status and last update follow
    /// from its age). Works on the record, so a list renders only the page it answers.
    pub(crate) fn matches(&self, action: &ActionRecord, now: OffsetDateTime) -> bool {
        // Derived at most once, and only when a clause asks for it.
        let status = std::cell::OnceCell::new();
        let status_at = || status.get_or_init(|| action.status_at(now));
        self.conditions.iter().all(|c| match c {
            Condition::Text(field, value) => {
                let actual = match field {
                    TextField::Id => action.id.as_str(),
                    TextField::Status => status_at().0.as_str(),
                    TextField::MachineId => action.machine_id.as_str(),
                    TextField::Type => action.action_type.as_str(),
                    TextField::Requestor => action.requestor.as_str(),
                };
                actual.eq_ignore_ascii_case(value)
            }
            Condition::Time(field, op, at) => {
                let actual = match field {
                    TimeField::Created => action.created,
                    TimeField::LastUpdated => status_at().1,
                };
                compare(actual, *op, *at)
            }
        })
    }
}

fn condition(clause: Clause) -> Option<Condition> {
    let Clause::Compare { field, op, value } = clause else { return None };
    let text = match field.as_str() {
        "id" => Some(TextField::Id),
        "status" => Some(TextField::Status),
        "machineid" => Some(TextField::MachineId),
        "type" => Some(TextField::Type),
        "requestor" => Some(TextField::Requestor),
        _ => None,
    };
    if let Some(text) = text {
        let Literal::Str(value) = value else { return None };
        return (op == Op::Eq).then_some(Condition::Text(text, value));
    }
    let time = match field.as_str() {
        "creationdatetimeutc" => TimeField::Created,
        "lastupdatedatetimeutc" => TimeField::LastUpdated,
        _ => return None,
    };
    let Literal::Bare(value) = value else { return None };
    Some(Condition::Time(time, op, OffsetDateTime::parse(&value, &Rfc3339).ok()?))
}

fn compare(actual: OffsetDateTime, op: Op, wanted: OffsetDateTime) -> bool {
    match op {
        Op::Eq => actual == wanted,
        Op::Gt => actual > wanted,
        Op::Ge => actual >= wanted,
        Op::Lt => actual < wanted,
        Op::Le => actual <= wanted,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use time::macros::datetime;

    use super::*;
    use crate::mde::simulator::config::{SeedMachine, SimulatorConfig};
    use crate::mde::types::ActionType;

    const CREATED: OffsetDateTime = datetime!(2024-10-21 11:25:48.330 UTC);

    fn action() -> ActionRecord {
        let config = SimulatorConfig {
            pending_for: Duration::from_secs(5),
            in_progress_for: Duration::from_secs(20),
            ..SimulatorConfig::default()
        };
        let machine = SeedMachine::isolated(&"ab".repeat(20), "a.contoso.com");
        ActionRecord::new(&config, &machine, ActionType::Unisolate, "O'Brien@contoso.com".into(), "c".into(), CREATED)
    }

    fn matches(filter: &str, now: OffsetDateTime) -> bool {
        ActionFilter::parse(Some(filter)).unwrap_or_else(|_| panic!("{filter} parses")).matches(&action(), now)
    }

    #[test]
    fn text_fields_match_without_case_and_a_quote_is_doubled() {
        let now = CREATED;
        assert!(matches(&format!("machineId eq '{}' and type eq 'unisolate'", "AB".repeat(20)), now));
        assert!(matches("requestor eq 'o''brien@contoso.com' and status eq 'Pending'", now));
        assert!(!matches("status eq 'Pending'", CREATED + Duration::from_secs(30)));
        assert!(matches("status eq 'Succeeded'", CREATED + Duration::from_secs(30)));
    }

    #[test]
    fn datetimes_compare_as_instants_whatever_their_fraction_digits() {
        let now = CREATED + Duration::from_secs(60);
        assert!(matches("creationDateTimeUtc eq 2024-10-21T11:25:48.33Z", now));
        assert!(matches("creationDateTimeUtc eq 2024-10-21T11:25:48.3300000Z", now));
        assert!(matches("creationDateTimeUtc ge 2024-10-21T11:25:48.3300000Z", now));
        assert!(!matches("creationDateTimeUtc gt 2024-10-21T11:25:48.3300000Z", now));
        assert!(matches("creationDateTimeUtc gt 2024-10-21T11:25:48.3299999Z", now));
        assert!(matches(
            "creationDateTimeUtc lt 2024-10-21T11:25:49Z and creationDateTimeUtc le 2024-10-21T11:25:48.33Z",
            now
        ));
        // Finished 25 s after creation.
        assert!(matches("lastUpdateDateTimeUtc eq 2024-10-21T11:26:13.330Z", now));
        assert!(matches("lastUpdateDateTimeUtc gt 2024-10-21T11:26:13Z", now));
    }

    #[test]
    fn unsupported_fields_operators_and_literals_are_refused() {
        for bad in [
            "computerDnsName eq 'x'",
            "machineId ne 'abc'",
            "machineId gt 'abc'",
            "machineId eq abc",
            "creationDateTimeUtc gt '2024-10-21T11:25:48Z'",
            "creationDateTimeUtc gt yesterday",
            "machineTags/any(t: t eq 'x')",
        ] {
            assert!(ActionFilter::parse(Some(bad)).is_err(), "{bad}");
        }
        assert!(ActionFilter::parse(None).is_ok());
    }
}
