//! Slack: an incoming-webhook message with Block Kit blocks.

use super::summary::{Summary, summarize};
use crate::notify::Message;
use serde_json::{Value, json};

/// Slack's limits: a header's text, a section's field count and a field's text.
const HEADER_CHARS: usize = 150;
const FIELDS_PER_SECTION: usize = 10;
const FIELD_CHARS: usize = 2000;

/// `{"text": <fallback line>, "blocks": [header, section(s) of mrkdwn fields, actions]}`; the
/// actions block (an "Open in dualkey" button) only when there is a console link. Every mrkdwn
/// text has `&`, `<` and `>` escaped, so a comment can neither mention `@channel` nor forge a link.
pub(super) fn render(msg: &Message<'_>) -> Value {
    blocks(&summarize(msg))
}

fn blocks(s: &Summary) -> Value {
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": limit(&s.title, HEADER_CHARS), "emoji": false},
    })];
    let fields: Vec<Value> = s
        .facts
        .iter()
        .map(|(label, value)| {
            json!({"type": "mrkdwn", "text": limit(&format!("*{label}*\n{}", escape(value)), FIELD_CHARS)})
        })
        .collect();
    for chunk in fields.chunks(FIELDS_PER_SECTION) {
        blocks.push(json!({"type": "section", "fields": chunk}));
    }
    if let Some(url) = &s.url {
        blocks.push(json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "text": {"type": "plain_text", "text": "Open in dualkey"},
                "url": url,
                "action_id": "open_in_dualkey",
            }],
        }));
    }
    json!({"text": escape(&s.title), "blocks": blocks})
}

/// Slack's mrkdwn escaping: `&`, `<` and `>` (the characters of `<!channel>` and `<url|text>`).
pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn limit(s: &str, max: usize) -> String {
    match s.char_indices().nth(max.saturating_sub(1)) {
        Some((at, _)) if s.chars().count() > max => format!("{}…", &s[..at]),
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::summary::tests::{message, release_data};
    use super::*;

    #[test]
    fn a_release_becomes_a_header_fields_and_a_button() {
        let data = release_data(Some("https://dualkey.contoso.com/console/releases/r1"));
        let v = render(&message("release.requested", &data));
        assert_eq!(v["text"], "Release requested: desktop-fin-01.contoso.com");
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["text"], "Release requested: desktop-fin-01.contoso.com");
        assert_eq!(blocks[1]["type"], "section");
        let fields: Vec<&str> =
            blocks[1]["fields"].as_array().unwrap().iter().map(|f| f["text"].as_str().unwrap()).collect();
        assert!(fields.contains(&"*Requested by*\nalice@contoso.com"), "{fields:?}");
        assert!(fields.contains(&"*Rule*\ntier0"), "{fields:?}");
        assert!(fields.iter().all(|f| blocks[1]["fields"][0]["type"] == "mrkdwn" && f.len() <= FIELD_CHARS));
        let button = &blocks[2]["elements"][0];
        assert_eq!((blocks[2]["type"].as_str(), button["type"].as_str()), (Some("actions"), Some("button")));
        assert_eq!(button["text"]["text"], "Open in dualkey");
        assert_eq!(button["url"], "https://dualkey.contoso.com/console/releases/r1");
    }

    #[test]
    fn people_text_is_escaped_so_it_cannot_ping_or_link() {
        let mut data = release_data(None);
        data["release"]["comment"] = serde_json::json!("<!channel> see <https://evil.example|here> & more");
        let v = render(&message("release.requested", &data));
        let text = v.to_string();
        assert!(text.contains("&lt;!channel&gt; see &lt;https://evil.example|here&gt; &amp; more"), "{text}");
        assert!(!text.contains("<!channel>"));
        assert_eq!(v["blocks"].as_array().unwrap().len(), 2, "no actions block without a link");
    }

    #[test]
    fn a_refused_policy_reload_and_long_titles_stay_within_slack_limits() {
        let data = serde_json::json!({"reason": "bad", "path": format!("/etc/{}.toml", "p".repeat(300))});
        let v = render(&message("policy.reload_refused", &data));
        let header = v["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(header.starts_with("Policy reload refused: /etc/ppp") && header.chars().count() == HEADER_CHARS);
        assert_eq!(v["blocks"][1]["fields"][0]["text"], "*Reason*\nbad");
    }
}
