//! `$filter` on `GET /api/machineactions`, the part MDE callers use to follow a device's
//! actions: `machineId eq '...'`, `status eq '...'` and `type eq '...'`, joined by `and`.
//! Field names and values compare without case, as MDE's do; a quote inside a value is
//! doubled (`''`). Anything else is refused, never ignored: a filter dropped silently would
//! answer with someone else's actions.

use super::action::status_of;
use crate::domain::{MachineId, Release};
use crate::mde::ActionStatus;

/// Every action type MDE documents; only `Unisolate` ever matches a release.
const ACTION_TYPES: [&str; 9] = [
    "RunAntiVirusScan",
    "Offboard",
    "LiveResponse",
    "CollectInvestigationPackage",
    "Isolate",
    "Unisolate",
    "StopAndQuarantineFile",
    "RestrictCodeExecution",
    "UnrestrictCodeExecution",
];

/// A parsed `$filter`: every clause must hold.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Filter {
    /// `Some(None)`: a machine id no device can have (so nothing matches).
    pub machine: Option<Option<MachineId>>,
    pub status: Option<ActionStatus>,
    /// False when a `type` other than `Unisolate` was asked for.
    pub unisolate: bool,
}

impl Filter {
    /// Parses `text`; the error says what is not supported.
    pub(super) fn parse(text: Option<&str>) -> Result<Self, String> {
        let mut f = Filter { unisolate: true, ..Filter::default() };
        let Some(text) = text else { return Ok(f) };
        let tokens = tokens(text)?;
        for clause in tokens.split(|t| matches!(t, Token::Word(w) if w.eq_ignore_ascii_case("and"))) {
            let [Token::Word(field), Token::Word(op), Token::Str(value)] = clause else {
                return Err(format!(
                    "Invalid filter clause: '{text}'. Supported: machineId, status and type eq 'value', joined by and."
                ));
            };
            if !op.eq_ignore_ascii_case("eq") {
                return Err(format!("Invalid filter clause: '{text}'. Only eq is supported."));
            }
            match field.to_ascii_lowercase().as_str() {
                "machineid" => f.machine = Some(MachineId::parse(value).ok()),
                "status" => {
                    let s = ActionStatus::KNOWN.iter().find(|s| s.as_str().eq_ignore_ascii_case(value));
                    f.status = Some(s.cloned().ok_or_else(|| format!("Invalid status '{value}'."))?);
                }
                "type" => {
                    let t = ACTION_TYPES.iter().find(|t| t.eq_ignore_ascii_case(value));
                    f.unisolate &= *t.ok_or_else(|| format!("Invalid type '{value}'."))? == "Unisolate";
                }
                other => return Err(format!("Invalid filter clause: '{text}'. The field '{other}' is not supported.")),
            }
        }
        Ok(f)
    }

    /// Whether nothing can match, so no row need be read.
    pub(super) fn matches_nothing(&self) -> bool {
        !self.unisolate || matches!(self.machine, Some(None))
    }

    /// Whether `r` holds every clause (the machine is also asked of the database).
    pub(super) fn matches(&self, r: &Release) -> bool {
        let machine = match &self.machine {
            Some(Some(m)) => &r.machine_id == m,
            Some(None) => false,
            None => true,
        };
        machine && self.unisolate && self.status.as_ref().is_none_or(|s| &status_of(r) == s)
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Str(String),
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        if c == '\'' {
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        value.push('\'');
                    }
                    Some('\'') => break,
                    Some(other) => value.push(other),
                    None => return Err(format!("Invalid filter clause: '{text}'. A quoted value is not closed.")),
                }
            }
            out.push(Token::Str(value));
            continue;
        }
        let mut word = c.to_string();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '\'' {
                break;
            }
            word.push(c);
            chars.next();
        }
        out.push(Token::Word(word));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_fields_parse_joined_by_and_without_case() {
        let id = "AB".repeat(20);
        let f = Filter::parse(Some(&format!("machineId eq '{id}' AND Status eq 'inprogress' and type eq 'Unisolate'")))
            .unwrap();
        assert_eq!(f.machine, Some(Some(MachineId::parse(&id).unwrap())));
        assert_eq!(f.status, Some(ActionStatus::InProgress));
        assert!(f.unisolate && !f.matches_nothing());
        assert_eq!(Filter::parse(None).unwrap(), Filter { unisolate: true, ..Filter::default() });
    }

    #[test]
    fn another_type_or_an_impossible_machine_matches_nothing() {
        assert!(Filter::parse(Some("type eq 'Isolate'")).unwrap().matches_nothing());
        assert!(Filter::parse(Some("machineId eq 'not-a-machine'")).unwrap().matches_nothing());
        assert!(Filter::parse(Some("machineId eq 'o''brien'")).unwrap().matches_nothing());
    }

    #[test]
    fn anything_outside_the_grammar_is_refused() {
        for bad in [
            "",
            "machineId",
            "machineId eq",
            "machineId ne 'a'",
            "requestor eq 'alice'",
            "status eq 'Done'",
            "type eq 'Reboot'",
            "status eq Pending",
            "machineId eq 'a' or type eq 'Unisolate'",
            "machineId eq 'a' and",
            "machineId eq 'open",
            "creationDateTimeUtc gt 2024-10-21T11:25:48Z",
        ] {
            assert!(Filter::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
