//! What the client prints for people: a table of releases and one release in detail. Pure
//! functions of the API's JSON and `now`; `--output json` bypasses all of this.
//!
//! Text from the server (device names from MDE, comments, identities) is printed with control
//! and format characters replaced, so nothing an attacker put in a device name can move the
//! cursor or reorder what an approver reads.

use super::parse_time;
use super::release::Release;
use crate::clock::Timestamp;
use std::fmt::Write;
use std::time::Duration;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// The columns of `releases list`.
const COLUMNS: [&str; 7] = ["ID", "DEVICE", "STATUS", "RULE", "SLOTS", "REQUESTER", "AGE"];
/// Longest a device name or requester may make its column; longer ones end in `…`.
const MAX_CELL: usize = 32;

/// The releases as a table, one line each, newest first as given.
pub(crate) fn table(releases: &[Release], now: Timestamp) -> String {
    let rows: Vec<[String; 7]> = releases
        .iter()
        .map(|r| {
            let rule = r.policy.as_ref().map_or("", |p| p.rule.as_str());
            [
                clean(&r.id),
                cut(&clean(r.device_name())),
                clean(&r.status),
                cut(&clean(rule)),
                r.slots(),
                cut(&clean(&r.requested_by)),
                parse_time(&r.requested_at).map_or_else(|| "?".into(), |t| age(now.since(t))),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..COLUMNS.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([COLUMNS[i].len()]).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for cells in std::iter::once(COLUMNS.map(String::from)).chain(rows) {
        let line: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// One release in detail: what an approver reads before deciding.
pub(crate) fn details(r: &Release, now: Timestamp) -> String {
    let when = |t: &str| match parse_time(t) {
        Some(at) if at <= now => format!("{t} ({} ago)", age(now.since(at))),
        Some(at) => format!("{t} (in {})", age(at.since(now))),
        None => clean(t),
    };
    let mut lines: Vec<(&str, String)> = vec![("Release", clean(&r.id))];
    let status = match (r.status.as_str(), r.expires_at.is_empty()) {
        ("pending", false) => format!("pending, expires {}", when(&r.expires_at)),
        (s, _) => clean(s),
    };
    lines.push(("Status", status));
    let device = r.policy.as_ref().and_then(|p| p.device.as_ref());
    lines.push(("Device", format!("{} ({})", clean(r.device_name()), clean(&r.machine_id))));
    if let Some(d) = device {
        let mut facts = Vec::new();
        facts.extend(d.rbac_group_name.as_deref().map(|g| format!("group {}", clean(g))));
        facts.extend(d.risk_score.as_deref().map(|s| format!("risk {}", clean(s))));
        if !d.machine_tags.is_empty() {
            facts.push(format!("tags {}", d.machine_tags.iter().map(|t| clean(t)).collect::<Vec<_>>().join(", ")));
        }
        if !facts.is_empty() {
            lines.push(("", facts.join(", ")));
        }
    }
    if let Some(p) = &r.policy {
        lines.extend(p.isolated_by.as_deref().map(|i| ("Isolated by", clean(i))));
        let hash =
            p.policy_hash.as_deref().map(|h| format!(" (policy {})", clean(&h.chars().take(12).collect::<String>())));
        lines.push(("Rule", format!("{}{}", clean(&p.rule), hash.unwrap_or_default())));
        for (i, s) in p.slots.iter().enumerate() {
            let who =
                if s.filled_by.is_empty() { String::new() } else { format!(": {}", clean(&s.filled_by.join(", "))) };
            let value = format!("{} {} of {}{who}", clean(&s.role), s.filled_by.len(), s.count);
            lines.push((if i == 0 { "Slots" } else { "" }, value));
        }
    }
    lines.push(("Requested by", format!("{} at {}", clean(&r.requested_by), when(&r.requested_at))));
    lines.push(("Comment", clean_text(&r.comment)));
    lines.extend(r.ticket.as_deref().map(|t| ("Ticket", clean(t))));
    for (i, a) in r.approvals.iter().enumerate() {
        let note = a.comment.as_deref().map(|c| format!(": {}", clean_text(c))).unwrap_or_default();
        lines.push((if i == 0 { "Approvals" } else { "" }, format!("{} at {}{note}", clean(&a.approver), when(&a.at))));
    }
    if let (Some(by), Some(at)) = (&r.decided_by, &r.decided_at) {
        let note = r.decision_comment.as_deref().map(|c| format!(": {}", clean_text(c))).unwrap_or_default();
        lines.push(("Decided", format!("{} by {} at {}{note}", clean(&r.status), clean(by), when(at))));
    }
    if let Some(b) = &r.break_glass {
        let ratified = match &b.ratified_by {
            Some(by) => format!("ratified by {}", clean(by)),
            None => format!("to be ratified by {}", when(&b.ratify_by)),
        };
        let reisolated =
            b.reisolated_at.as_deref().map(|t| format!(", isolated again {}", when(t))).unwrap_or_default();
        lines.push(("Break-glass", format!("{ratified}{reisolated}")));
    }
    if let Some(id) = &r.mde_action_id {
        let status = r.mde_action_status.as_deref().map(clean).unwrap_or_else(|| "status unknown".into());
        let sends = if r.attempts == 1 { "1 send".to_string() } else { format!("{} sends", r.attempts) };
        lines.push(("MDE action", format!("{} ({status}, {sends})", clean(id))));
    }
    lines.extend(r.last_error.as_deref().map(|e| ("Last error", clean(e))));

    let width = lines.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (label, value) in lines {
        let pad = " ".repeat(width + 2);
        let value = value.replace('\n', &format!("\n{pad}"));
        let _ = writeln!(out, "{:<width$}  {value}", label);
    }
    out
}

/// A duration as people read an age: `45s`, `12m`, `5h`, `3d`.
pub(crate) fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c.general_category(),
            GeneralCategory::Format | GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator
        )
}

/// One line of text from the server, safe to put on a terminal.
pub(crate) fn clean(s: &str) -> String {
    s.chars().map(|c| if unsafe_char(c) { '\u{FFFD}' } else { c }).collect()
}

/// Like [`clean`], keeping line breaks and tabs (comments may have several lines).
fn clean_text(s: &str) -> String {
    s.chars().map(|c| if c != '\n' && c != '\t' && unsafe_char(c) { '\u{FFFD}' } else { c }).collect()
}

fn cut(s: &str) -> String {
    if s.chars().count() <= MAX_CELL { s.to_string() } else { s.chars().take(MAX_CELL - 1).chain(['…']).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn release(id: &str, device: &str, status: &str, filled: &[&str], requested_at: &str) -> Release {
        serde_json::from_value(json!({
            "id": id, "machine_id": "1e5bc9d7e413ddd7902c2932e418702b84d0cc07", "status": status,
            "comment": "Reimaged and scanned clean\nsecond line", "ticket": "INC-1234",
            "requested_by": "alice", "requested_at": requested_at, "expires_at": "2026-11-29T13:30:28.890Z",
            "approvals_required": 2,
            "approvals": filled.iter().map(|a| json!({"approver": a, "comment": null, "at": "2026-11-28T13:35:28.890Z"})).collect::<Vec<_>>(),
            "policy": {"rule": "tier0", "policy_hash": "7903f055aabbccdd", "isolated_by": "analyst@contoso.com",
                "slots": [{"role": "Release.Approve", "count": 2, "filled_by": filled}],
                "device": {"id": "1e5b", "computer_dns_name": device, "rbac_group_name": "Workstations", "machine_tags": ["fin"], "risk_score": "Medium"}},
            "some_newer_field": true
        }))
        .unwrap()
    }

    fn now() -> Timestamp {
        parse_time("2026-11-28T14:30:28.890Z").unwrap()
    }

    #[test]
    fn the_table_lines_up_its_columns_under_the_headers() {
        let rows = [
            release(
                "01a22259-a09a-77eb-8f71-af6f0069a6e4",
                "desktop-fin-01.contoso.com",
                "pending",
                &["bob"],
                "2026-11-28T13:30:28.890Z",
            ),
            release(
                "01a22259-0000-77eb-8f71-af6f0069a6e5",
                "srv",
                "approved",
                &["bob", "carol"],
                "2026-11-28T14:30:00.000Z",
            ),
        ];
        let text = table(&rows, now());
        let expected = "\
ID                                    DEVICE                      STATUS    RULE   SLOTS  REQUESTER  AGE
01a22259-a09a-77eb-8f71-af6f0069a6e4  desktop-fin-01.contoso.com  pending   tier0  1/2    alice      1h
01a22259-0000-77eb-8f71-af6f0069a6e5  srv                         approved  tier0  2/2    alice      28s
";
        assert_eq!(text, expected);
    }

    #[test]
    fn long_names_are_cut_and_terminal_controls_never_reach_the_screen() {
        let long = format!("{}.contoso.com", "x".repeat(40));
        let text = table(&[release("id-1", &format!("evil\u{1b}[2J\u{202e}{long}"), "pending", &[], "")], now());
        assert!(!text.contains('\u{1b}') && !text.contains('\u{202e}'), "{text:?}");
        let row = text.lines().nth(1).unwrap();
        assert!(row.contains("evil\u{FFFD}[2J\u{FFFD}xxxxxxxx"), "{row}");
        assert!(row.contains("…  pending") && row.ends_with("?"), "{row}");
    }

    #[test]
    fn details_show_device_slots_approvals_and_times_in_plain_words() {
        let text = details(
            &release("01a2", "desktop-fin-01.contoso.com", "pending", &["bob"], "2026-11-28T13:30:28.890Z"),
            now(),
        );
        for line in [
            "Release       01a2",
            "Status        pending, expires 2026-11-29T13:30:28.890Z (in 23h)",
            "Device        desktop-fin-01.contoso.com (1e5bc9d7e413ddd7902c2932e418702b84d0cc07)",
            "              group Workstations, risk Medium, tags fin",
            "Isolated by   analyst@contoso.com",
            "Rule          tier0 (policy 7903f055aabb)",
            "Slots         Release.Approve 1 of 2: bob",
            "Requested by  alice at 2026-11-28T13:30:28.890Z (1h ago)",
            "Comment       Reimaged and scanned clean\n              second line",
            "Ticket        INC-1234",
            "Approvals     bob at 2026-11-28T13:35:28.890Z (55m ago)",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
    }

    #[test]
    fn details_name_the_mde_action_and_how_often_it_was_sent() {
        let mut r = release("01a2", "srv", "dispatched", &["bob", "carol"], "2026-11-28T13:30:28.890Z");
        (r.mde_action_id, r.mde_action_status, r.attempts) = (Some("4c74e651".into()), Some("Pending".into()), 1);
        assert!(details(&r, now()).contains("MDE action    4c74e651 (Pending, 1 send)\n"));
        r.attempts = 3;
        r.last_error = Some("HTTP 503 from MDE".into());
        let text = details(&r, now());
        assert!(text.contains("(Pending, 3 sends)\n") && text.contains("Last error    HTTP 503 from MDE\n"), "{text}");
    }

    #[test]
    fn ages_read_in_the_largest_whole_unit() {
        let s = Duration::from_secs;
        assert_eq!(
            [age(s(0)), age(s(59)), age(s(60)), age(s(3599)), age(s(3600)), age(s(47 * 3600)), age(s(3 * 86_400))],
            ["0s", "59s", "1m", "59m", "1h", "47h", "3d"]
        );
    }
}
