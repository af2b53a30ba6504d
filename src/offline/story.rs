//! A release's audit entries in plain words: who requested, who approved under which rule,
//! what MDE answered.

use crate::audit::AuditEntry;
use serde_json::Value;

fn s<'a>(d: &'a Value, k: &str) -> &'a str {
    d.get(k).and_then(Value::as_str).unwrap_or("?")
}

fn list(d: &Value, k: &str) -> String {
    match d.get(k).and_then(Value::as_array) {
        Some(items) if !items.is_empty() => {
            items.iter().map(|v| v.as_str().unwrap_or("?")).collect::<Vec<_>>().join(", ")
        }
        _ => "none".into(),
    }
}

/// One line per entry, in order.
pub(super) fn tell(entries: &[AuditEntry]) -> Vec<String> {
    entries.iter().map(line).collect()
}

fn line(e: &AuditEntry) -> String {
    let d: Value = serde_json::from_str(&e.details).unwrap_or(Value::Null);
    let (at, who) = (e.at.rfc3339(), e.actor.as_str());
    let what = match e.action.as_str() {
        "release_requested" => {
            let ticket = d.get("ticket").and_then(Value::as_str).map(|t| format!(", ticket {t}")).unwrap_or_default();
            format!(
                "requested by {who} for device {}: \"{}\"{ticket}; rule `{}` needs {} approval(s); policy {}",
                e.machine_id.as_deref().unwrap_or("?"),
                s(&d, "comment"),
                s(&d, "rule"),
                d.get("approvals_required").and_then(Value::as_u64).unwrap_or(0),
                s(&d, "policy_hash"),
            )
        }
        "approval_recorded" => format!(
            "approved by {who} with role(s) {} ({} of {} approvals)",
            list(&d, "roles"),
            d.get("slots_filled").and_then(Value::as_u64).unwrap_or(0),
            d.get("approvals_required").and_then(Value::as_u64).unwrap_or(0),
        ),
        "release_approved" => format!("reached its approvals: {}", list(&d, "approvers")),
        "break_glass_released" => {
            format!(
                "break-glass: released at once by {who} (role(s) {}), to be ratified by {}",
                list(&d, "roles"),
                s(&d, "ratify_by")
            )
        }
        "break_glass_ratified" => format!("break-glass ratified by {}", s(&d, "ratified_by")),
        "release_rejected" => format!("rejected by {who}: \"{}\"", s(&d, "comment")),
        "release_cancelled" => format!("cancelled by {who}"),
        "release_expired" => "expired undecided".to_string(),
        "dispatch_claimed" => {
            format!("sent to MDE (attempt {})", d.get("attempt").and_then(Value::as_u64).unwrap_or(0))
        }
        "unisolate_accepted" => format!(
            "MDE accepted the unisolate (HTTP {}): action {}, status {}",
            d.get("http_status").and_then(Value::as_u64).unwrap_or(0),
            s(&d, "mde_action_id"),
            d.get("mde_action_status").and_then(Value::as_str).unwrap_or("unknown"),
        ),
        "mde_action_adopted" => format!("adopted the MDE action {} MDE already had", s(&d, "mde_action_id")),
        "dispatch_attempt_failed" => format!("a send to MDE failed: {}", s(&d, "error")),
        "mde_action_progressed" => format!(
            "MDE action {} went from {} to {}",
            s(&d, "mde_action_id"),
            d.get("from").and_then(Value::as_str).unwrap_or("new"),
            s(&d, "to")
        ),
        "release_succeeded" => format!("MDE reports the device released (action {})", s(&d, "mde_action_id")),
        "release_failed" => format!("the release failed: {}", s(&d, "reason")),
        other => format!("{other} by {who}"),
    };
    format!("#{} {at}  {what}", e.seq)
}
