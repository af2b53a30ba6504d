//! Every channel kind through the daemon: a Teams card, a Slack message and an e-mail (to an
//! SMTP server started by the test) for the same request, with the console link; and the
//! break-glass events.

use crate::helpers::*;
use crate::notify_support::Receiver;
use crate::smtp_receiver::SmtpReceiver;
use reqwest::StatusCode;
use serde_json::json;

const LONG: &str = "Ransomware cleanup verified; payroll server must be back before the bank cutoff";

#[tokio::test]
async fn a_request_reaches_teams_slack_and_email_with_its_facts_and_the_console_link() {
    let (teams, slack, smtp) = (Receiver::start().await, Receiver::start().await, SmtpReceiver::start().await);
    let text = format!(
        "[[channels]]\nname = \"teams\"\nkind = \"teams\"\nurl = \"{}\"\n[[channels]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"{}\"\n[[channels]]\nname = \"mail\"\nkind = \"email\"\nsmtp_url = \"{}\"\nfrom = \"dualkey@example.com\"\nto = [\"soc@example.com\"]\n[[routes]]\nevents = [\"release.requested\"]\nchannels = [\"teams\", \"slack\", \"mail\"]\n",
        teams.url,
        slack.url,
        smtp.url()
    );
    let notify: dualkey::settings::NotifySettings = toml::from_str(&text).unwrap();
    let app = spawn_app_with(move |s| {
        s.notify = notify;
        s.console.public_url = Some("https://dualkey.example.com".into());
    })
    .await;
    let id = app.create_release(1).await["id"].as_str().unwrap().to_string();
    let link = format!("https://dualkey.example.com/ui/releases/{id}");
    eventually("teams, slack and mail", async || {
        teams.delivered_types().len() == 1 && slack.delivered_types().len() == 1 && smtp.messages().len() == 1
    })
    .await;

    let card = &teams.received()[0].body;
    assert_eq!(card["type"], "message");
    let attachment = &card["attachments"][0];
    assert_eq!(attachment["contentType"], "application/vnd.microsoft.card.adaptive");
    let content = attachment["content"].to_string();
    for fact in ["host.contoso.com", "alice", "reimaged and scanned clean", "default", "Open in dualkey", link.as_str()]
    {
        assert!(content.contains(fact), "{fact} in the Teams card: {content}");
    }

    let message = slack.received()[0].body.clone();
    assert!(message["text"].as_str().unwrap().contains("Release requested"), "{message}");
    let blocks = message["blocks"].to_string();
    for fact in ["host.contoso.com", "alice", "Open in dualkey", link.as_str()] {
        assert!(blocks.contains(fact), "{fact} in the Slack blocks: {blocks}");
    }

    let mail = &smtp.messages()[0];
    assert_eq!(mail.to, ["soc@example.com"]);
    // Quoted-printable: undo its soft line breaks and `=3D` before looking for the link.
    let data = &mail.data.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
    assert!(data.contains("Subject: [dualkey] "), "{data}");
    assert!(data.contains("text/plain") && data.contains("text/html"), "both parts: {data}");
    assert!(data.contains(&link) && data.contains("host.contoso.com"), "{data}");
    // A receiver has a message before the daemon has recorded its answer: wait for the record.
    let delivered = async || {
        let listed = app.get("/api/v1/notifications?status=delivered", &app.auditor()).await;
        listed.json::<serde_json::Value>().await.unwrap()["items"].as_array().unwrap().len()
    };
    eventually("all three recorded as delivered", async || delivered().await >= 3).await;
    assert_eq!(delivered().await, 3);
}

#[tokio::test]
async fn break_glass_is_notified_as_used_then_as_ratified_and_never_as_requested() {
    let hook = Receiver::start().await;
    let text = format!(
        "[[channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\nsecret = \"whsec_dGhpcnR5LXR3by1ieXRlcy1vZi10ZXN0LXNlY3JldA==\"\n[[routes]]\nevents = [\"release.requested\", \"break_glass.used\", \"break_glass.ratified\", \"release.approval_added\"]\nchannels = [\"hook\"]\n",
        hook.url
    );
    let notify: dualkey::settings::NotifySettings = toml::from_str(&text).unwrap();
    let policy: toml::Value = toml::from_str("[break_glass]\nenabled = true\n").unwrap();
    let m = spawn_with_mde(test_simulator(), move |s| {
        s.notify = notify;
        s.policy = dualkey::rules::PolicyDocument::from_toml(policy).unwrap();
    })
    .await;
    let bree = m.app.token("bree", &["Release.BreakGlass"]);
    let r = m
        .app
        .post("/api/v1/releases", &bree, json!({"machine_id": SEEDED, "comment": LONG, "break_glass": true}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    m.drive_until(&id, "succeeded").await;
    assert_eq!(m.app.approve(&id, &m.app.approver("bob")).await.status(), StatusCode::OK);
    eventually("used and ratified", async || hook.delivered_types().len() >= 2).await;
    assert_eq!(hook.delivered_types(), ["break_glass.used", "break_glass.ratified"]);
    let ratified = &hook.received()[1].body["data"]["release"];
    assert_eq!(ratified["break_glass"]["ratified_by"], "bob");
}

/// A webhook channel receiving every event.
fn every_event_to(hook: &Receiver) -> dualkey::settings::NotifySettings {
    let events: Vec<String> = dualkey::settings::EVENTS.iter().map(|e| format!("\"{e}\"")).collect();
    let text = format!(
        "[[channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\nsecret = \"whsec_dGhpcnR5LXR3by1ieXRlcy1vZi10ZXN0LXNlY3JldA==\"\n[[routes]]\nevents = [{}]\nchannels = [\"hook\"]\n",
        hook.url,
        events.join(", ")
    );
    toml::from_str(&text).unwrap()
}

#[tokio::test]
async fn rejected_cancelled_expired_failed_and_unratified_releases_are_each_notified() {
    use dualkey::mde::simulator::{FaultAction, RouteKind};
    let hook = Receiver::start().await;
    let notify = every_event_to(&hook);
    let policy: toml::Value = toml::from_str("[break_glass]\nenabled = true\nratify_within = \"1h\"\n").unwrap();
    let m = spawn_with_mde(test_simulator(), move |s| {
        s.notify = notify;
        s.policy = dualkey::rules::PolicyDocument::from_toml(policy).unwrap();
    })
    .await;
    let app = &m.app;
    let rejected = app.create_release(1).await["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            &format!("/api/v1/releases/{rejected}/reject"),
            &app.approver("bob"),
            json!({"comment": "not scanned yet, sorry"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let cancelled = app.create_release(2).await["id"].as_str().unwrap().to_string();
    let r = app.post(&format!("/api/v1/releases/{cancelled}/cancel"), &app.requester(), json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    // MDE refuses the device for good: the release fails.
    m.sim.inject(RouteKind::Unisolate, FaultAction::status(404), 1);
    let failed = m.approved(&machine(3)).await;
    m.drive_until(&failed, "failed").await;
    // Not ratified within the hour: dualkey isolates the device again.
    let r = app
        .post(
            "/api/v1/releases",
            &app.token("bree", &["Release.BreakGlass"]),
            json!({"machine_id": machine(4), "comment": LONG, "break_glass": true}),
        )
        .await;
    let glass = r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    m.drive_until(&glass, "succeeded").await;
    let expired = app.create_release(5).await["id"].as_str().unwrap().to_string();
    app.clock.advance(std::time::Duration::from_secs(25 * 3600));
    m.drive_until(&glass, "reisolated").await;
    assert_eq!(app.release(&expired).await["status"], "expired");

    let want = [
        (rejected.as_str(), "release.rejected"),
        (cancelled.as_str(), "release.cancelled"),
        (failed.as_str(), "release.failed"),
        (glass.as_str(), "break_glass.used"),
        (glass.as_str(), "break_glass.unratified"),
        (expired.as_str(), "release.expired"),
    ];
    eventually("every final event", async || {
        let got: Vec<(String, String)> = hook
            .received()
            .iter()
            .map(|r| {
                (
                    r.body["data"]["release"]["id"].as_str().unwrap_or("").to_string(),
                    r.body["type"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        want.iter().all(|(id, e)| got.contains(&(id.to_string(), e.to_string())))
    })
    .await;
}
