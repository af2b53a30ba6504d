//! `$filter` on machines, as MDE documents it: `rbacGroupId eq 140` (a bare number),
//! `eq` on `id`, `computerDnsName`, `healthStatus`, `riskScore` and `exposureLevel` (quoted
//! strings, compared without case), and `machineTags/any(t: t eq 'tag')`.

use super::parse::{Clause, Literal, Op, clauses};
use super::{Reject, invalid_filter};
use crate::mde::simulator::config::SeedMachine;

/// A parsed machine `$filter`: every clause must hold.
#[derive(Debug, Default)]
pub(crate) struct MachineFilter {
    conditions: Vec<Condition>,
}

#[derive(Debug)]
enum Condition {
    Text(TextField, String),
    RbacGroup(i64),
    Tag(String),
}

#[derive(Debug, Clone, Copy)]
enum TextField {
    Id,
    ComputerDnsName,
    HealthStatus,
    RiskScore,
    ExposureLevel,
}

impl MachineFilter {
    /// Parses `$filter` (none: everything matches); anything unsupported is a 400 `ODataError`.
    pub(crate) fn parse(text: Option<&str>) -> Result<Self, Reject> {
        let Some(text) = text else { return Ok(Self::default()) };
        let conditions = clauses(text).and_then(|c| c.into_iter().map(condition).collect());
        conditions.map(|conditions| Self { conditions }).ok_or_else(|| invalid_filter(text))
    }

    /// True when `machine` satisfies every clause.
    pub(crate) fn matches(&self, machine: &SeedMachine) -> bool {
        self.conditions.iter().all(|c| match c {
            Condition::Text(field, value) => {
                let actual = match field {
                    TextField::Id => &machine.id,
                    TextField::ComputerDnsName => &machine.computer_dns_name,
                    TextField::HealthStatus => &machine.health_status,
                    TextField::RiskScore => &machine.risk_score,
                    TextField::ExposureLevel => &machine.exposure_level,
                };
                actual.eq_ignore_ascii_case(value)
            }
            Condition::RbacGroup(id) => machine.rbac_group_id == *id,
            Condition::Tag(tag) => machine.machine_tags.iter().any(|t| t.eq_ignore_ascii_case(tag)),
        })
    }
}

fn condition(clause: Clause) -> Option<Condition> {
    match clause {
        Clause::AnyEq { collection, value } => (collection == "machinetags").then_some(Condition::Tag(value)),
        Clause::Compare { op, .. } if op != Op::Eq => None,
        Clause::Compare { field, value: Literal::Bare(number), .. } if field == "rbacgroupid" => {
            number.parse().ok().map(Condition::RbacGroup)
        }
        Clause::Compare { field, value: Literal::Str(value), .. } => {
            let field = match field.as_str() {
                "id" => TextField::Id,
                "computerdnsname" => TextField::ComputerDnsName,
                "healthstatus" => TextField::HealthStatus,
                "riskscore" => TextField::RiskScore,
                "exposurelevel" => TextField::ExposureLevel,
                _ => return None,
            };
            Some(Condition::Text(field, value))
        }
        Clause::Compare { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> SeedMachine {
        let mut m = SeedMachine::isolated(&"ab".repeat(20), "WS-0010.contoso.com");
        (m.rbac_group_id, m.machine_tags, m.risk_score) =
            (10, vec!["Tier0".into(), "outbreak-2026".into()], "High".into());
        m
    }

    fn matches(filter: &str) -> bool {
        MachineFilter::parse(Some(filter)).unwrap_or_else(|_| panic!("{filter} parses")).matches(&machine())
    }

    #[test]
    fn each_documented_clause_matches_and_they_combine_with_and() {
        assert!(matches("rbacGroupId eq 10"));
        assert!(!matches("rbacGroupId eq 140"));
        assert!(matches("healthStatus eq 'active' and riskScore eq 'High'"));
        assert!(!matches("riskScore eq 'Low'"));
        assert!(matches("machineTags/any(t: t eq 'tier0')"));
        assert!(!matches("machineTags/any(t: t eq 'tier1')"));
        assert!(matches("computerDnsName eq 'ws-0010.contoso.com' and exposureLevel eq 'Medium'"));
        assert!(matches(&format!(
            "id eq '{}' and rbacGroupId eq 10 and machineTags/any(t: t eq 'outbreak-2026')",
            "ab".repeat(20)
        )));
    }

    #[test]
    fn unsupported_fields_operators_and_literals_are_refused() {
        for bad in [
            "rbacGroupId eq '10'",
            "rbacGroupId gt 10",
            "rbacGroupId eq ten",
            "healthStatus eq Active",
            "osPlatform eq 'Windows11'",
            "ipAddresses/any(t: t eq '10.0.0.1')",
            "machineTags/any(t: t eq 'a') or rbacGroupId eq 10",
        ] {
            assert!(MachineFilter::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
