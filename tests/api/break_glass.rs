//! Break-glass: one person releases at once; a second must ratify in time, or dualkey isolates
//! the device again. Nothing about it escapes the audit chain.

use crate::helpers::*;
use dualkey::mde::simulator::RouteKind;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const GLASS: &str = "Release.BreakGlass";
const LONG: &str = "Ransomware cleanup verified; payroll server must be back before the bank cutoff";

async fn glass_app() -> MdeApp {
    let value: toml::Value = toml::from_str("[break_glass]\nenabled = true\nratify_within = \"1h\"\n").unwrap();
    spawn_with_mde(test_simulator(), move |s| s.policy = dualkey::rules::PolicyDocument::from_toml(value).unwrap())
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
    assert_eq!(r["break_glass"]["reisolation_action_id"], isolations[0].id.as_str());
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
