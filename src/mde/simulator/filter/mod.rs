//! The subset of OData the machine-actions list supports: `$filter` with `eq` clauses joined
//! by `and`, on the fields MDE documents as filterable, plus `$top` and `$skip`.

use std::collections::HashMap;

use axum::http::StatusCode;

use super::wire::{Reject, WireAction, reject};

/// Most actions one page may hold (`$top` max and page size in MDE).
const MAX_TOP: usize = 10_000;

/// A parsed `$filter`/`$top`/`$skip`.
#[derive(Debug)]
pub(crate) struct ActionFilter {
    clauses: Vec<(Field, String)>,
    pub top: usize,
    pub skip: usize,
}

#[derive(Debug, Clone, Copy)]
enum Field {
    Id,
    Status,
    MachineId,
    Type,
    Requestor,
}

impl ActionFilter {
    /// Parses the query; anything outside the supported subset is a 400 `ODataError`.
    pub(super) fn from_query(query: &HashMap<String, String>) -> Result<Self, Reject> {
        let odata_error = |m: &str| reject(StatusCode::BAD_REQUEST, "ODataError", m);
        let number = |key: &str, default: usize| match query.get(key) {
            None => Ok(default),
            Some(v) => v.trim().parse::<usize>().map_err(|_| odata_error(&format!("Invalid value for {key}: '{v}'."))),
        };
        let top = number("$top", MAX_TOP)?;
        if top > MAX_TOP {
            return Err(odata_error("The limit of '10000' for Top query has been exceeded."));
        }
        let skip = number("$skip", 0)?;
        let clauses = match query.get("$filter") {
            None => vec![],
            Some(text) => {
                parse_filter(text).ok_or_else(|| odata_error(&format!("Invalid filter clause: '{text}'.")))?
            }
        };
        Ok(Self { clauses, top, skip })
    }

    /// The machine a `machineId eq '…'` clause asks for, if any: lets the list skip other
    /// machines' actions before rendering them.
    pub(super) fn machine_id(&self) -> Option<&str> {
        self.clauses.iter().find(|(f, _)| matches!(f, Field::MachineId)).map(|(_, v)| v.as_str())
    }

    /// True when `action` satisfies every clause. String comparison ignores case, as
    /// OData `eq` on MDE's enums and ids does in practice.
    pub(super) fn matches(&self, action: &WireAction) -> bool {
        self.clauses.iter().all(|(field, value)| {
            let actual = match field {
                Field::Id => action.id.as_str(),
                Field::Status => action.status.as_str(),
                Field::MachineId => action.machine_id.as_str(),
                Field::Type => action.action_type.as_str(),
                Field::Requestor => action.requestor.as_str(),
            };
            actual.eq_ignore_ascii_case(value)
        })
    }
}

/// `machineId eq 'abc' and type eq 'Unisolate'` → clauses; `None` when unsupported.
fn parse_filter(text: &str) -> Option<Vec<(Field, String)>> {
    let mut clauses = Vec::new();
    for clause in split_and(text) {
        let (field, rest) = clause.trim().split_once(char::is_whitespace)?;
        let (op, value) = rest.trim().split_once(char::is_whitespace)?;
        if !op.eq_ignore_ascii_case("eq") {
            return None;
        }
        let value = value.trim().strip_prefix('\'')?.strip_suffix('\'')?;
        let field = match field.to_ascii_lowercase().as_str() {
            "id" => Field::Id,
            "status" => Field::Status,
            "machineid" => Field::MachineId,
            "type" => Field::Type,
            "requestor" => Field::Requestor,
            _ => return None,
        };
        clauses.push((field, value.replace("''", "'")));
    }
    Some(clauses)
}

/// Splits on the keyword `and` outside quoted strings.
fn split_and(text: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut in_quotes = false;
    let words = text.split(' ').filter(|w| !w.is_empty());
    for word in words {
        if !in_quotes && word.eq_ignore_ascii_case("and") {
            parts.push(String::new());
            continue;
        }
        let current = parts.last_mut().expect("never empty");
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
        in_quotes ^= word.matches('\'').count() % 2 == 1;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_machine_and_type_filter_parses_into_two_clauses() {
        let clauses = parse_filter("machineId eq 'abc' and type eq 'Unisolate'").unwrap();
        assert_eq!(clauses.len(), 2);
        assert_eq!(clauses[1].1, "Unisolate");
        assert!(parse_filter("machineId ne 'abc'").is_none());
        assert!(parse_filter("computerDnsName eq 'x'").is_none());
        let quoted = parse_filter("requestor eq 'a and b'").unwrap();
        assert_eq!(quoted[0].1, "a and b");
    }
}
