//! The leaf form of an entry: one JSON object with every field, in RFC 8785 (JCS) canonical
//! form. It is the Merkle tree's leaf data (leaf index = `seq` − 1), the line exports and
//! evidence carry, and what forwarders send, so whoever holds a line can hash it.

use super::AuditEntry;
use crate::clock::Timestamp;
use serde_json::{Value, json};

/// The entry as the JSON object of its leaf form. `details` is the stored JSON object; a stored
/// value that is not JSON (only a tampered row) is carried as a string, and then fails to verify.
pub fn leaf_value(e: &AuditEntry) -> Value {
    let details: Value = serde_json::from_str(&e.details).unwrap_or_else(|_| Value::String(e.details.clone()));
    json!({
        "seq": e.seq,
        "at": e.at.rfc3339(),
        "actor": e.actor,
        "action": e.action,
        "release_id": e.release_id,
        "machine_id": e.machine_id,
        "release_prev_seq": e.release_prev_seq,
        "details": details,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    })
}

/// The leaf data: the canonical bytes of [`leaf_value`], without a newline.
pub fn leaf_line(e: &AuditEntry) -> String {
    crate::jcs::jcs(&leaf_value(e))
}

/// The policy hash named by the newest of `entries` that names one: a release's request, or its
/// reopening under a newer policy.
pub(crate) fn policy_named(entries: &[AuditEntry]) -> Option<String> {
    entries.iter().rev().find_map(|e| {
        let d: Value = serde_json::from_str(&e.details).ok()?;
        d.get("policy_hash")?.as_str().map(str::to_string)
    })
}

/// Why a line is not an entry's leaf form.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LeafError {
    #[error("the line is not a JSON object: {0}")]
    NotJson(String),
    #[error("field `{0}` is missing or has the wrong type")]
    Field(&'static str),
    #[error("the line is not in canonical (RFC 8785) form")]
    NotCanonical,
}

/// Reads a leaf line back into an entry. The line must be exactly the canonical form of what
/// it holds, so that the entry read and the bytes hashed into the tree are the same thing.
pub fn parse_leaf_line(line: &str) -> Result<AuditEntry, LeafError> {
    let v: Value = serde_json::from_str(line).map_err(|e| LeafError::NotJson(e.to_string()))?;
    if !v.is_object() {
        return Err(LeafError::NotJson("not an object".into()));
    }
    let text = |k: &'static str| v.get(k).and_then(Value::as_str).map(str::to_string).ok_or(LeafError::Field(k));
    let opt_text = |k: &'static str| match v.get(k) {
        Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        _ => Err(LeafError::Field(k)),
    };
    let at = Timestamp::parse_rfc3339(&text("at")?).ok_or(LeafError::Field("at"))?;
    let release_prev_seq = match v.get("release_prev_seq") {
        Some(Value::Null) => None,
        Some(n) => Some(n.as_i64().ok_or(LeafError::Field("release_prev_seq"))?),
        None => return Err(LeafError::Field("release_prev_seq")),
    };
    let details = v.get("details").filter(|d| d.is_object()).ok_or(LeafError::Field("details"))?;
    let entry = AuditEntry {
        seq: v.get("seq").and_then(Value::as_i64).ok_or(LeafError::Field("seq"))?,
        at,
        actor: text("actor")?,
        action: text("action")?,
        release_id: opt_text("release_id")?,
        machine_id: opt_text("machine_id")?,
        release_prev_seq,
        details: crate::canonical::canonical_json(details),
        prev_hash: text("prev_hash")?,
        hash: text("hash")?,
    };
    if leaf_line(&entry) != line {
        return Err(LeafError::NotCanonical);
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> AuditEntry {
        AuditEntry {
            seq: 7,
            at: Timestamp::from_unix_ms(1_764_600_000_123),
            actor: "alice".into(),
            action: "approval_recorded".into(),
            release_id: Some("0193a8e4-7a3c-7d5e-9b1f-0123456789ab".into()),
            machine_id: Some("ab".repeat(20)),
            release_prev_seq: Some(5),
            details: r#"{"comment":"ok","roles":["approver"]}"#.into(),
            prev_hash: "0".repeat(64),
            hash: "f".repeat(64),
        }
    }

    #[test]
    fn the_leaf_line_holds_every_field_with_sorted_keys_and_millisecond_utc_time() {
        let line = leaf_line(&entry());
        assert_eq!(
            line,
            format!(
                r#"{{"action":"approval_recorded","actor":"alice","at":"2025-12-01T14:40:00.123Z","details":{{"comment":"ok","roles":["approver"]}},"hash":"{}","machine_id":"{}","prev_hash":"{}","release_id":"0193a8e4-7a3c-7d5e-9b1f-0123456789ab","release_prev_seq":5,"seq":7}}"#,
                "f".repeat(64),
                "ab".repeat(20),
                "0".repeat(64)
            )
        );
    }

    #[test]
    fn a_leaf_line_reads_back_into_the_same_entry() {
        assert_eq!(parse_leaf_line(&leaf_line(&entry())), Ok(entry()));
    }

    #[test]
    fn a_line_that_is_not_canonical_or_lacks_a_field_is_refused() {
        let line = leaf_line(&entry());
        let spaced = line.replacen(':', ": ", 1);
        assert_eq!(parse_leaf_line(&spaced), Err(LeafError::NotCanonical));
        let mut v: Value = serde_json::from_str(&line).unwrap();
        v.as_object_mut().unwrap().remove("release_prev_seq");
        assert_eq!(parse_leaf_line(&v.to_string()), Err(LeafError::Field("release_prev_seq")));
        assert!(matches!(parse_leaf_line("[1]"), Err(LeafError::NotJson(_))));
    }
}
