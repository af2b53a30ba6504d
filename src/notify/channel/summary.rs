//! What the human-readable kinds (Teams, Slack, e-mail) show: a title in plain words, the facts
//! of the release (or of the refused policy reload), and the console link. One place reads the
//! message's data, so every kind shows the same facts.

use crate::notify::Message;
use serde_json::Value;

/// The longest value shown for one fact; longer text (a long comment) is cut with `…`.
const MAX_FACT_CHARS: usize = 500;

/// A message in plain words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Summary {
    /// E.g. `Release requested: desktop-fin-01.contoso.com`.
    pub title: String,
    /// `(label, value)` in display order; values are plain text, cut to a readable length.
    pub facts: Vec<(&'static str, String)>,
    /// The console link, only when `data.url` is an http(s) URL.
    pub url: Option<String>,
}

/// What an event is called in a title. Unknown events (a test message) show their name.
pub(super) fn event_title(event: &str) -> &str {
    match event {
        "release.requested" => "Release requested",
        "release.approval_added" => "Approval added",
        "release.approved" => "Release approved",
        "release.rejected" => "Release rejected",
        "release.cancelled" => "Release cancelled",
        "release.expired" => "Release request expired",
        "release.dispatched" => "Release sent to Defender",
        "release.succeeded" => "Device released from isolation",
        "release.failed" => "Release failed",
        "break_glass.used" => "Break-glass release used",
        "break_glass.ratified" => "Break-glass release ratified",
        "break_glass.unratified" => "Break-glass release not ratified: device isolated again",
        "policy.reload_refused" => "Policy reload refused",
        "bypass.detected" => "Device released outside dualkey",
        other => other,
    }
}

/// Reads `msg.data`: `{"release", "url"}`, for `policy.reload_refused` `{"reason", "path"}`,
/// or for `bypass.detected` `{"bypass": {...}}`.
/// Missing fields are left out rather than shown empty.
pub(super) fn summarize(msg: &Message<'_>) -> Summary {
    let data = msg.data;
    let url = str_at(data, "/url").filter(|u| u.starts_with("https://") || u.starts_with("http://"));
    let mut facts = Vec::new();
    let mut push = |label: &'static str, value: Option<&str>| {
        if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
            facts.push((label, cut(v)));
        }
    };
    let event = event_title(msg.event);
    if let Some(b) = data.get("bypass").filter(|b| b.is_object()) {
        push("Device", str_at(b, "/machine_id"));
        push("Defender action", str_at(b, "/mde_action_id"));
        push("Released by", str_at(b, "/requestor"));
        push("Comment", str_at(b, "/requestor_comment"));
        push("At", str_at(b, "/created"));
        push("dualkey's response", str_at(b, "/response"));
        let title = match str_at(b, "/machine_id") {
            Some(m) => format!("{event}: {m}"),
            None => event.to_string(),
        };
        return Summary { title: cut(&title), facts, url: url.map(str::to_string) };
    }
    let Some(release) = data.get("release").filter(|r| r.is_object()) else {
        push("Reason", str_at(data, "/reason"));
        push("File", str_at(data, "/path"));
        let title = match str_at(data, "/path") {
            Some(path) if msg.event == "policy.reload_refused" => format!("{event}: {path}"),
            _ => event.to_string(),
        };
        return Summary { title: cut(&title), facts, url: url.map(str::to_string) };
    };
    let machine = str_at(release, "/machine_id");
    let device_name = str_at(release, "/policy/device/computer_dns_name");
    let title = match device_name.or(machine) {
        Some(device) => format!("{event}: {device}"),
        None => event.to_string(),
    };
    let device = match (device_name, machine) {
        (Some(name), Some(id)) => Some(format!("{name} ({id})")),
        (name, id) => name.or(id).map(str::to_string),
    };
    push("Device", device.as_deref());
    push("Status", str_at(release, "/status"));
    push("Requested by", str_at(release, "/requested_by"));
    push("Comment", str_at(release, "/comment"));
    push("Ticket", str_at(release, "/ticket"));
    push("Rule", str_at(release, "/policy/rule"));
    push("Approvals", slots(release).as_deref());
    push("Defender action", str_at(release, "/mde_action_status"));
    push("Break-glass", break_glass(release).as_deref());
    push("Release id", str_at(release, "/id"));
    Summary { title: cut(&title), facts, url: url.map(str::to_string) }
}

fn str_at<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// `approver 1/2 (alice@contoso.com); security 0/1`.
fn slots(release: &Value) -> Option<String> {
    let slots = release.pointer("/policy/slots")?.as_array()?;
    let shown: Vec<String> = slots
        .iter()
        .map(|s| {
            let role = str_at(s, "/role").unwrap_or("approver");
            let count = s.get("count").and_then(Value::as_u64).unwrap_or(0);
            let by: Vec<&str> =
                s.get("filled_by").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
            match by.is_empty() {
                true => format!("{role} {}/{count}", by.len()),
                false => format!("{role} {}/{count} ({})", by.len(), by.join(", ")),
            }
        })
        .collect();
    (!shown.is_empty()).then(|| shown.join("; "))
}

fn break_glass(release: &Value) -> Option<String> {
    let bg = release.get("break_glass").filter(|b| b.is_object())?;
    Some(match (str_at(bg, "/ratified_by"), str_at(bg, "/ratify_by")) {
        (Some(by), _) => format!("ratified by {by}"),
        (None, Some(deadline)) => format!("to be ratified by {deadline}"),
        (None, None) => "yes".to_string(),
    })
}

fn cut(s: &str) -> String {
    match s.char_indices().nth(MAX_FACT_CHARS) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use serde_json::json;

    pub(in crate::notify::channel) const MACHINE: &str = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07";

    /// A release view as the API shows it, trimmed to what the renderers read.
    pub(in crate::notify::channel) fn release_data(url: Option<&str>) -> Value {
        json!({
            "release": {
                "id": "0190f3a2-7b1c-7d3e-9f00-1234567890ab",
                "machine_id": MACHINE,
                "comment": "Reimaged <b>after</b> triage & cleared",
                "ticket": "INC-4711",
                "status": "pending",
                "requested_by": "alice@contoso.com",
                "approvals": [],
                "mde_action_status": null,
                "break_glass": null,
                "policy": {
                    "rule": "tier0",
                    "slots": [{"role": "approver", "count": 2, "filled_by": ["bob@contoso.com"]},
                              {"role": "security", "count": 1, "filled_by": []}],
                    "device": {"id": MACHINE, "computer_dns_name": "desktop-fin-01.contoso.com"}
                }
            },
            "url": url,
        })
    }

    pub(in crate::notify::channel) fn message<'a>(event: &'a str, data: &'a Value) -> Message<'a> {
        Message { id: "msg_2a8f", event, timestamp: Timestamp::from_unix_ms(1_614_265_330_000), data }
    }

    #[test]
    fn a_release_is_summed_up_with_its_device_people_rule_and_slots() {
        let data = release_data(Some("https://dualkey.contoso.com/console/releases/0190f3a2"));
        let s = summarize(&message("release.requested", &data));
        assert_eq!(s.title, "Release requested: desktop-fin-01.contoso.com");
        let fact = |label: &str| s.facts.iter().find(|(l, _)| *l == label).map(|(_, v)| v.as_str());
        assert_eq!(fact("Device"), Some(format!("desktop-fin-01.contoso.com ({MACHINE})").as_str()));
        assert_eq!(fact("Requested by"), Some("alice@contoso.com"));
        assert_eq!(fact("Ticket"), Some("INC-4711"));
        assert_eq!(fact("Rule"), Some("tier0"));
        assert_eq!(fact("Approvals"), Some("approver 1/2 (bob@contoso.com); security 0/1"));
        assert_eq!(fact("Release id"), Some("0190f3a2-7b1c-7d3e-9f00-1234567890ab"));
        assert_eq!(fact("Defender action"), None, "null fields are left out");
        assert_eq!(s.url.as_deref(), Some("https://dualkey.contoso.com/console/releases/0190f3a2"));
    }

    #[test]
    fn a_refused_policy_reload_shows_its_reason_and_file() {
        let data = json!({"reason": "rule `tier0` has no slots", "path": "/etc/dualkey/policy.toml"});
        let s = summarize(&message("policy.reload_refused", &data));
        assert_eq!(s.title, "Policy reload refused: /etc/dualkey/policy.toml");
        assert_eq!(
            s.facts,
            vec![("Reason", "rule `tier0` has no slots".to_string()), ("File", "/etc/dualkey/policy.toml".to_string())]
        );
        assert_eq!(s.url, None);
    }

    #[test]
    fn a_link_that_is_not_http_is_not_offered_and_long_comments_are_cut() {
        let mut data = release_data(Some("javascript:alert(1)"));
        data["release"]["comment"] = json!("x".repeat(2000));
        let s = summarize(&message("release.approved", &data));
        assert_eq!(s.url, None);
        let comment = &s.facts.iter().find(|(l, _)| *l == "Comment").unwrap().1;
        assert_eq!(comment.chars().count(), MAX_FACT_CHARS + 1);
    }
}
