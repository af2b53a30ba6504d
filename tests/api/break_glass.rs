//! Break-glass: one person releases at once; a second must ratify in time, or dualkey isolates
//! the device again. Nothing about it escapes the audit chain.

use crate::helpers::*;
use dualkey::mde::simulator::{FaultAction, RouteKind};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const GLASS: &str = "Release.BreakGlass";
const LONG: &str = "Ransomware cleanup verified; payroll server must be back before the bank cutoff";

async fn glass_app() -> MdeApp {
    glass_app_with(|_| {}).await
}

async fn glass_app_with(tweak: impl FnOnce(&mut dualkey::settings::Settings)) -> MdeApp {
    let value: toml::Value = toml::from_str("[break_glass]\nenabled = true\nratify_within = \"1h\"\n").unwrap();
    spawn_with_mde(test_simulator(), move |s| {
        s.policy = dualkey::rules::PolicyDocument::from_toml(value).unwrap();
        tweak(s);
    })
    .await
}

async fn break_glass(m: &MdeApp, token: &str, comment: &str) -> reqwest::Response {
    m.app.post("/api/v1/releases", token, json!({"machine_id": SEEDED, "comment": comment, "break_glass": true})).await
}

#[tokio::test]
async fn a_break_glass_release_is_sent_at_once_and_ratified_in_time() {
    let m = glass_app().await;
    let gina = m.app.token("gina", &[GLASS]);
    let r = break_glass(&m, &gina, LONG).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["status"], "approved", "no second person before it goes out");
    assert!(created["break_glass"]["ratify_by"].is_string());
    let id = created["id"].as_str().unwrap().to_string();
    m.drive_until(&id, "succeeded").await;
    assert_eq!(m.sim.unisolate_count(SEEDED), 1);

    let r = m.app.approve(&id, &gina).await;
    assert_eq!(error_code(r).await, (StatusCode::FORBIDDEN, "self_approval_forbidden".into()));
    let r: Value = m.app.approve(&id, &m.app.approver("bob")).await.json().await.unwrap();
    assert_eq!(r["break_glass"]["ratified_by"], "bob");
    m.app.clock.advance(Duration::from_secs(2 * 3600));
    m.worker.run_until_idle().await.unwrap();
    assert_eq!(m.sim.count(RouteKind::Isolate), 0, "ratified in time: the device stays released");
    for action in ["break_glass_released", "break_glass_ratified"] {
        assert_eq!(m.app.audit_actions(action).await.len(), 1, "{action}");
    }
}

#[tokio::test]
async fn an_unratified_break_glass_release_is_isolated_again_by_dualkey() {
    let m = glass_app().await;
    let r = break_glass(&m, &m.app.token("gina", &[GLASS]), LONG).await;
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    m.drive_until(&id, "succeeded").await;
    m.app.clock.advance(Duration::from_secs(3601));
    m.worker.run_until_idle().await.unwrap();
    let isolations: Vec<_> = m
        .sim
        .actions_for(SEEDED)
        .into_iter()
        .filter(|a| a.action_type.as_ref().is_some_and(|t| t.as_str() == "Isolate"))
        .filter(|a| a.requestor_comment.as_deref().is_some_and(|c| c.contains(&id)))
        .collect();
    assert_eq!(isolations.len(), 1, "isolated again, with a comment naming the release");
    let r = m.app.release(&id).await;
    assert_eq!(r["status"], "reisolated", "the status says the device is isolated again");
    assert_eq!(r["break_glass"]["reisolation_action_id"], isolations[0].id.as_str());
    let auditor = m.app.auditor();
    let listed: Value = m.app.get("/api/v1/releases?status=reisolated", &auditor).await.json().await.unwrap();
    let ids: Vec<&str> = listed["items"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [id.as_str()], "the list filters on the new status");
    let succeeded: Value = m.app.get("/api/v1/releases?status=succeeded", &auditor).await.json().await.unwrap();
    assert_eq!(succeeded["items"].as_array().unwrap().len(), 0);
    let reisolated = m.app.audit_actions("break_glass_reisolated").await;
    assert_eq!(reisolated.len(), 1);
    let r = m.app.approve(&id, &m.app.approver("bob")).await;
    assert_eq!(error_code(r).await, (StatusCode::CONFLICT, "ratification_too_late".into()));
    m.worker.run_until_idle().await.unwrap();
    assert_eq!(m.sim.count(RouteKind::Isolate), 1, "isolated once, not again");
}

#[tokio::test]
async fn break_glass_needs_its_role_a_long_comment_and_the_policy_switched_on() {
    let m = glass_app().await;
    let r = break_glass(&m, &m.app.requester(), LONG).await;
    assert_eq!(error_code(r).await, (StatusCode::FORBIDDEN, "missing_role".into()));
    let r = break_glass(&m, &m.app.token("gina", &[GLASS]), "urgent, sorry").await;
    assert_eq!(error_code(r).await, (StatusCode::UNPROCESSABLE_ENTITY, "invalid_comment".into()));
    let plain = spawn_app().await;
    let r = plain
        .post(
            "/api/v1/releases",
            &plain.token("gina", &[GLASS]),
            json!({"machine_id": SEEDED, "comment": LONG, "break_glass": true}),
        )
        .await;
    assert_eq!(error_code(r).await, (StatusCode::UNPROCESSABLE_ENTITY, "break_glass_disabled".into()));
    assert_eq!(m.app.count("SELECT COUNT(*) FROM releases").await, 0);
}

/// A break-glass release sent and left unratified past its deadline, with MDE refusing every
/// Isolate: sends back off from 1 s (doubling, jittered into the upper half) and stop after 3.
async fn unratified_while_isolate_fails() -> (MdeApp, String) {
    let m = glass_app_with(|s| {
        s.mde.backoff_base = "1s".parse().unwrap();
        s.mde.backoff_max = "1h".parse().unwrap();
        s.mde.max_attempts = 3;
    })
    .await;
    m.sim.inject(RouteKind::Isolate, FaultAction::status(503), 100);
    let r = break_glass(&m, &m.app.token("gina", &[GLASS]), LONG).await;
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    m.drive_until(&id, "succeeded").await;
    m.app.clock.advance(Duration::from_secs(3601));
    (m, id)
}

fn millis(rfc3339: &Value) -> i64 {
    let t = time::OffsetDateTime::parse(rfc3339.as_str().unwrap(), &time::format_description::well_known::Rfc3339);
    (t.unwrap().unix_timestamp_nanos() / 1_000_000) as i64
}

#[tokio::test]
async fn a_failing_reisolation_backs_off_longer_after_each_attempt() {
    let (m, _) = unratified_while_isolate_fails().await;
    let mut delays = Vec::new();
    for attempt in 1..=2 {
        m.worker.run_until_idle().await.unwrap();
        let failed = m.app.audit_actions("break_glass_reisolation_failed").await;
        assert_eq!(failed.len(), attempt, "one attempt per due time, none before it");
        let last = &failed[attempt - 1];
        assert_eq!(last["details"]["attempt"], attempt);
        assert_eq!(last["details"]["http_status"], 503);
        delays.push(millis(&last["details"]["next_attempt_at"]) - last["at_ms"].as_i64().unwrap());
        m.app.clock.advance(Duration::from_secs(60));
    }
    // Attempt n waits between half and all of 1 s * 2^(n-1).
    assert!((500..=1000).contains(&delays[0]), "{delays:?}");
    assert!((1000..=2000).contains(&delays[1]), "{delays:?}");
    assert_eq!(m.sim.count(RouteKind::Isolate), 2);
}

#[tokio::test]
async fn reisolation_stops_after_max_attempts_and_the_audit_trail_says_so() {
    let (m, id) = unratified_while_isolate_fails().await;
    for _ in 0..5 {
        m.worker.run_until_idle().await.unwrap();
        m.app.clock.advance(Duration::from_secs(3600));
    }
    assert_eq!(m.sim.count(RouteKind::Isolate), 3, "max_attempts, then no more calls");
    let failed = m.app.audit_actions("break_glass_reisolation_failed").await;
    assert_eq!(failed.len(), 3);
    assert!(failed[2]["details"]["next_attempt_at"].is_null(), "the last attempt says none follows");
    let abandoned = m.app.audit_actions("break_glass_reisolation_abandoned").await;
    assert_eq!(abandoned.len(), 1);
    assert_eq!(abandoned[0]["release_id"], id.as_str());
    assert_eq!(abandoned[0]["details"]["attempts"], 3);
    let r = m.app.release(&id).await;
    assert_eq!(r["status"], "succeeded", "the device is still released: nobody isolated it");
    assert_eq!(r["break_glass"]["reisolation_attempts"], 3);
    assert!(r["break_glass"]["reisolation_abandoned_at"].is_string(), "{r}");
}
