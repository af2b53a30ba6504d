//! Teams: a message with one Adaptive Card, as a Teams Workflows webhook ("Post to a channel
//! when a webhook request is received") expects it.

use super::summary::{Summary, summarize};
use crate::notify::Message;
use serde_json::{Value, json};

/// The card: a bold title line, a FactSet, and an "Open in dualkey" button when there is a
/// console link (without one the release id is among the facts).
pub(super) fn render(msg: &Message<'_>) -> Value {
    card(&summarize(msg))
}

fn card(s: &Summary) -> Value {
    let facts: Vec<Value> = s.facts.iter().map(|(title, value)| json!({"title": title, "value": value})).collect();
    let mut content = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": s.title, "weight": "Bolder", "size": "Medium", "wrap": true},
            {"type": "FactSet", "facts": facts},
        ],
    });
    if let Some(url) = &s.url {
        content["actions"] = json!([{"type": "Action.OpenUrl", "title": "Open in dualkey", "url": url}]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": content,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::super::summary::tests::{MACHINE, message, release_data};
    use super::*;

    #[test]
    fn a_release_becomes_an_adaptive_card_with_facts_and_a_button() {
        let data = release_data(Some("https://dualkey.contoso.com/console/releases/r1"));
        let v = render(&message("release.requested", &data));
        assert_eq!(v["type"], "message");
        let att = &v["attachments"][0];
        assert_eq!(att["contentType"], "application/vnd.microsoft.card.adaptive");
        assert!(att["contentUrl"].is_null());
        let card = &att["content"];
        assert_eq!((card["type"].as_str(), card["version"].as_str()), (Some("AdaptiveCard"), Some("1.4")));
        assert_eq!(card["body"][0]["text"], "Release requested: desktop-fin-01.contoso.com");
        let facts = card["body"][1]["facts"].as_array().unwrap();
        let fact = |t: &str| facts.iter().find(|f| f["title"] == t).map(|f| f["value"].as_str().unwrap());
        assert_eq!(fact("Device"), Some(format!("desktop-fin-01.contoso.com ({MACHINE})").as_str()));
        assert_eq!(fact("Requested by"), Some("alice@contoso.com"));
        assert_eq!(fact("Comment"), Some("Reimaged <b>after</b> triage & cleared"));
        assert_eq!(fact("Rule"), Some("tier0"));
        assert!(fact("Approvals").unwrap().contains("1/2"));
        assert_eq!(fact("Status"), Some("pending"));
        let action = &card["actions"][0];
        assert_eq!(
            (action["type"].as_str(), action["title"].as_str(), action["url"].as_str()),
            (Some("Action.OpenUrl"), Some("Open in dualkey"), Some("https://dualkey.contoso.com/console/releases/r1"))
        );
    }

    #[test]
    fn without_a_link_there_is_no_button_and_the_release_id_is_a_fact() {
        let data = release_data(None);
        let v = render(&message("release.approved", &data));
        let card = &v["attachments"][0]["content"];
        assert!(card.get("actions").is_none(), "{card}");
        let facts = card["body"][1]["facts"].as_array().unwrap();
        assert!(
            facts.iter().any(|f| f["title"] == "Release id" && f["value"] == "0190f3a2-7b1c-7d3e-9f00-1234567890ab")
        );
    }

    #[test]
    fn a_refused_policy_reload_is_a_card_with_the_reason() {
        let data = serde_json::json!({"reason": "unknown role `sec`", "path": "/etc/dualkey/policy.toml"});
        let v = render(&message("policy.reload_refused", &data));
        let card = &v["attachments"][0]["content"];
        assert_eq!(card["body"][0]["text"], "Policy reload refused: /etc/dualkey/policy.toml");
        assert_eq!(card["body"][1]["facts"][0], serde_json::json!({"title": "Reason", "value": "unknown role `sec`"}));
    }
}
