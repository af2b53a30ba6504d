//! Notifications from the transactional outbox, delivered over real HTTP to receivers the
//! tests start on loopback: payloads, signatures, routing by rule, ordering, retries,
//! Retry-After, dead letters, and one channel never holding up another.

use crate::helpers::*;
use crate::notify_support::{Answer, Receiver, SECRET_BYTES, hmac_sha256, whsec};
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// `[notify]` with webhook channels `name -> url` and `routes`, quick retries.
fn notify_toml(channels: &[(&str, &str)], routes: &str) -> dualkey::settings::NotifySettings {
    let mut text = String::from("backoff_base = \"1s\"\nbackoff_max = \"8s\"\n");
    for (name, url) in channels {
        text.push_str(&format!(
            "[[channels]]\nname = \"{name}\"\nkind = \"webhook\"\nurl = \"{url}\"\nsecret = \"{}\"\n",
            whsec()
        ));
    }
    text.push_str(routes);
    toml::from_str(&text).unwrap()
}

const ALL_TO_HOOK: &str = "[[routes]]\nevents = [\"release.requested\", \"release.approval_added\", \"release.approved\", \"release.rejected\", \"release.cancelled\", \"release.dispatched\", \"release.succeeded\", \"release.failed\", \"release.expired\"]\nchannels = [\"hook\"]\n";

async fn app_with_hook(hook: &Receiver) -> MdeApp {
    let notify = notify_toml(&[("hook", &hook.url)], ALL_TO_HOOK);
    spawn_with_mde(test_simulator(), move |s| s.notify = notify).await
}

/// Waits (real time, bounded) until `receiver` has accepted `n` messages.
async fn delivered(receiver: &Receiver, n: usize) {
    eventually(&format!("{n} messages delivered"), async || receiver.delivered_types().len() >= n).await;
}

/// Waits (real time, bounded) until the daemon has recorded `n` messages as `status`: a receiver
/// holds a message before the daemon has read its answer.
async fn recorded(app: &TestApp, status: &str, n: usize) {
    let query = format!("?status={status}");
    eventually(&format!("{n} recorded {status}"), async || notifications(app, &query).await.len() >= n).await;
}

async fn notifications(app: &TestApp, query: &str) -> Vec<Value> {
    let r = app.get(&format!("/api/v1/notifications{query}"), &app.auditor()).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["items"].as_array().unwrap().clone()
}

fn header(h: &reqwest::header::HeaderMap, name: &str) -> String {
    h.get(name).unwrap_or_else(|| panic!("no {name} header")).to_str().unwrap().to_string()
}

#[tokio::test]
async fn each_event_of_a_release_reaches_the_webhook_in_order_with_a_signature_that_verifies() {
    let hook = Receiver::start().await;
    let m = app_with_hook(&hook).await;
    let id = m.approved(SEEDED).await;
    m.drive_until(&id, "succeeded").await;
    delivered(&hook, 5).await;
    recorded(&m.app, "delivered", 5).await;
    assert_eq!(
        hook.delivered_types(),
        ["release.requested", "release.approval_added", "release.approved", "release.dispatched", "release.succeeded"]
    );
    let got = hook.received();
    let first = &got[0];
    assert_eq!(first.body["data"]["release"]["id"], id.as_str());
    assert_eq!(first.body["data"]["release"]["status"], "pending", "the release as it was at the event");
    assert_eq!(got[4].body["data"]["release"]["status"], "succeeded");
    assert!(first.body["data"]["url"].is_null(), "no console.public_url, no link");
    assert!(first.body["timestamp"].as_str().unwrap().ends_with('Z'));

    // Standard Webhooks: HMAC-SHA256 of "{id}.{timestamp}.{body}" with the decoded secret.
    for r in &got {
        assert!(r.signed(), "{:?}", r.headers);
        let (msg_id, ts) = (header(&r.headers, "webhook-id"), header(&r.headers, "webhook-timestamp"));
        let expected = base64::engine::general_purpose::STANDARD
            .encode(hmac_sha256(SECRET_BYTES, &[format!("{msg_id}.{ts}.").as_bytes(), &r.raw]));
        assert_eq!(header(&r.headers, "webhook-signature"), format!("v1,{expected}"));
    }
    // The webhook-id is the message id of the API and of the audit entry of its delivery.
    let listed = notifications(&m.app, "?status=delivered").await;
    assert_eq!(listed.len(), 5);
    let ids: Vec<String> = got.iter().map(|r| header(&r.headers, "webhook-id")).collect();
    for item in &listed {
        assert!(ids.contains(&item["id"].as_str().unwrap().to_string()), "{item}");
        assert_eq!(item["channel"], "hook");
        assert!(item["delivered_at"].is_string());
    }
    let audited = m.app.audit_actions("notification_delivered").await;
    assert_eq!(audited.len(), 5);
    assert!(audited.iter().all(|e| ids.contains(&e["details"]["message_id"].as_str().unwrap().to_string())));
    assert!(!serde_json::to_string(&audited).unwrap().contains(&hook.url), "never the URL");
}

#[tokio::test]
async fn a_rule_filter_routes_a_tier0_request_only_where_it_should() {
    let (soc, everyone) = (Receiver::start().await, Receiver::start().await);
    let routes = "[[routes]]\nevents = [\"release.requested\"]\nrules = [\"tier0\"]\nchannels = [\"soc\"]\n[[routes]]\nevents = [\"release.requested\"]\nchannels = [\"everyone\"]\n";
    let notify = notify_toml(&[("soc", &soc.url), ("everyone", &everyone.url)], routes);
    let policy: toml::Value = toml::from_str(&format!(
        "[[rules]]\nname = \"tier0\"\nmatch = {{ computer_dns_names = [\"laptop-hr-07.contoso.com\"] }}\nrequire = [ {{ role = \"{APPROVER}\", count = 1 }} ]\n"
    ))
    .unwrap();
    let app = spawn_app_with(move |s| {
        s.notify = notify;
        s.policy = dualkey::rules::PolicyDocument::from_toml(policy).unwrap();
    })
    .await;
    for machine_id in [SEEDED, SEEDED_2] {
        let r = app
            .post(
                "/api/v1/releases",
                &app.requester(),
                json!({"machine_id": machine_id, "comment": "reimaged and scanned clean"}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    delivered(&everyone, 2).await;
    delivered(&soc, 1).await;
    let soc_got = soc.received();
    assert_eq!(soc_got.len(), 1);
    assert_eq!(soc_got[0].body["data"]["release"]["machine_id"], SEEDED_2);
    assert_eq!(soc_got[0].body["data"]["release"]["policy"]["rule"], "tier0");
}

#[tokio::test]
async fn a_503_then_200_is_delivered_once_with_the_same_webhook_id_on_each_try() {
    let hook = Receiver::start().await;
    hook.answer([Answer::Status(503), Answer::Status(503)]);
    let m = app_with_hook(&hook).await;
    m.app.create_release(1).await;
    eventually("the first refused try", async || !hook.received().is_empty()).await;
    // Backoff 1 s, then 2 s (with jitter at most that): the clock moves them.
    for _ in 0..2 {
        m.app.clock.advance(Duration::from_secs(3));
        let n = hook.received().len();
        eventually("another try", async || hook.received().len() > n).await;
    }
    let got = hook.received();
    assert_eq!(got.iter().map(|r| r.status).collect::<Vec<_>>(), [503, 503, 200]);
    let ids: Vec<String> = got.iter().map(|r| header(&r.headers, "webhook-id")).collect();
    assert!(ids.iter().all(|i| i == &ids[0]), "{ids:?}");
    recorded(&m.app, "delivered", 1).await;
    let listed = notifications(&m.app, "").await;
    assert_eq!((listed[0]["status"].as_str(), listed[0]["attempts"].as_i64()), (Some("delivered"), Some(3)));
}

#[tokio::test]
async fn a_429_with_retry_after_is_not_tried_again_before_it() {
    let hook = Receiver::start().await;
    hook.answer([Answer::RetryAfter(429, 30)]);
    let m = app_with_hook(&hook).await;
    m.app.create_release(1).await;
    eventually("the first try", async || !hook.received().is_empty()).await;
    m.app.clock.advance(Duration::from_secs(29));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(hook.received().len(), 1, "29 s after a Retry-After of 30 s: no second try");
    m.app.clock.advance(Duration::from_secs(2));
    delivered(&hook, 1).await;
}

#[tokio::test]
async fn a_400_marks_the_message_dead_with_the_reason_and_the_next_one_goes_on() {
    let hook = Receiver::start().await;
    hook.answer([Answer::Status(400)]);
    let m = app_with_hook(&hook).await;
    m.app.create_release(1).await;
    m.app.create_release(2).await;
    delivered(&hook, 1).await;
    let dead = notifications(&m.app, "?status=dead").await;
    assert_eq!(dead.len(), 1);
    assert!(dead[0]["last_error"].as_str().unwrap().contains("400"), "{}", dead[0]);
    let audited = m.app.audit_actions("notification_dead").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0]["details"]["message_id"], dead[0]["id"]);
}

#[tokio::test]
async fn a_receiver_down_for_a_while_gets_everything_afterwards_in_order() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}/hook");
    let notify = notify_toml(&[("hook", &url)], ALL_TO_HOOK);
    let app = spawn_app_with(move |s| s.notify = notify).await;
    let mut made = Vec::new();
    for n in 1..=3 {
        made.push(app.create_release(n).await["id"].as_str().unwrap().to_string());
    }
    // Connection refused meanwhile: the clock passes several backoffs.
    for _ in 0..3 {
        app.clock.advance(Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hook = Receiver::start_on(tokio::net::TcpListener::bind(addr).await.unwrap()).await;
    app.clock.advance(Duration::from_secs(10));
    delivered(&hook, 3).await;
    let order: Vec<String> =
        hook.received().iter().map(|r| r.body["data"]["release"]["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(order, made, "in the order they were written");
}

#[tokio::test]
async fn a_stuck_channel_does_not_delay_another() {
    let (stuck, quick) = (Receiver::start().await, Receiver::start().await);
    stuck.answer([Answer::Hang(Duration::from_secs(5))]);
    let routes = "[[routes]]\nevents = [\"release.requested\"]\nchannels = [\"stuck\", \"quick\"]\n";
    let notify = notify_toml(&[("stuck", &stuck.url), ("quick", &quick.url)], routes);
    let app = spawn_app_with(move |s| s.notify = notify).await;
    app.create_release(1).await;
    app.create_release(2).await;
    delivered(&quick, 2).await;
    assert!(stuck.received().is_empty(), "the stuck receiver has not answered its first message yet");
}

#[tokio::test]
async fn a_refused_approval_writes_no_message() {
    let hook = Receiver::start().await;
    let m = app_with_hook(&hook).await;
    let id = m.app.create_release(1).await["id"].as_str().unwrap().to_string();
    delivered(&hook, 1).await;
    let r = m.app.approve(&id, &m.app.requester()).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(m.app.count("SELECT count(*) FROM notify_outbox").await, 1, "only release.requested");
}

#[tokio::test]
async fn a_message_not_delivered_within_max_age_is_dead_and_says_so() {
    let hook = Receiver::start().await;
    hook.answer((0..100).map(|_| Answer::Status(503)));
    let m = app_with_hook(&hook).await;
    m.app.create_release(1).await;
    eventually("the first try", async || !hook.received().is_empty()).await;
    // Backoff is at most 8 s here: a day of it ends in max_age (24 h).
    m.app.clock.advance(Duration::from_secs(24 * 3600 + 1));
    eventually("the message to die", async || notifications(&m.app, "?status=dead").await.len() == 1).await;
    let dead = notifications(&m.app, "?status=dead").await;
    assert!(dead[0]["last_error"].as_str().unwrap().contains("max_age"), "{}", dead[0]);
    assert_eq!(m.app.audit_actions("notification_dead").await.len(), 1);
}
