//! The worker re-reads the device right before sending and refuses to act on a decision the
//! world has overtaken.

use crate::helpers::*;
use dualkey::mde::IsolationType;
use dualkey::mde::simulator::RouteKind;
use std::time::Duration;

#[tokio::test]
async fn a_device_released_outside_dualkey_fails_the_release_without_sending() {
    let m = spawn_with_mde(test_simulator(), |_| {}).await;
    let id = m.approved(SEEDED).await;
    m.direct_client().unisolate(SEEDED, "released by hand in the portal").await.unwrap();
    m.app.clock.advance(Duration::from_millis(200)); // the simulator finishes the action
    m.worker.run_until_idle().await.unwrap();
    let r = m.app.release(&id).await;
    assert_eq!(r["status"], "failed");
    assert!(r["last_error"].as_str().unwrap().contains("released outside dualkey"), "{r}");
    assert_eq!(m.sim.count(RouteKind::Unisolate), 1, "only the release made by hand");
    assert_eq!(m.app.audit_actions("release_failed").await.len(), 1);
}

#[tokio::test]
async fn a_device_isolated_again_after_the_approvals_fails_the_release_without_sending() {
    let m = spawn_with_mde(test_simulator(), |_| {}).await;
    let id = m.approved(SEEDED).await;
    m.app.clock.advance(Duration::from_millis(10)); // the new isolation is strictly after approval
    m.direct_client().isolate(SEEDED, "new incident INC-9", IsolationType::Full).await.unwrap();
    m.worker.run_until_idle().await.unwrap();
    let r = m.app.release(&id).await;
    assert_eq!(r["status"], "failed");
    assert!(r["last_error"].as_str().unwrap().contains("isolated again"), "{r}");
    assert_eq!(m.sim.count(RouteKind::Unisolate), 0);
}

#[tokio::test]
async fn a_tightened_policy_sends_the_release_back_to_pending_for_the_missing_slots() {
    // One daemon approved under the default rule (one approver); the worker's daemon now runs a
    // policy that needs two.
    let m = spawn_with_mde(test_simulator(), |_| {}).await;
    let id = m.approved(SEEDED).await;
    let db_url = m.app.db_url.clone();
    let tightened = spawn_on(m.sim.clone(), &m.app.clock, move |s| {
        s.database.url = db_url;
        s.policy.approvals_required = 2;
    })
    .await;
    tightened.worker.clone().unwrap().run_until_idle().await.unwrap();
    let r = m.app.release(&id).await;
    assert_eq!(r["status"], "pending", "{r}");
    assert_eq!(r["approvals_required"], 2);
    assert_eq!(r["policy"]["slots"][0]["filled_by"], serde_json::json!(["bob"]));
    assert_eq!(m.sim.count(RouteKind::Unisolate), 0);
    let reopened = m.app.audit_actions("release_reopened").await;
    assert_eq!(reopened.len(), 1);
    assert_eq!(reopened[0]["details"]["policy_hash"], r["policy"]["policy_hash"], "it now carries the policy in force");
    let approved_under = m.app.audit_actions("policy_loaded").await[0]["details"]["policy_hash"].clone();
    assert_ne!(r["policy"]["policy_hash"], approved_under);
    // A second approver completes it under the new rule, and it goes out.
    let done: serde_json::Value = m.app.approve(&id, &m.app.approver("carol")).await.json().await.unwrap();
    assert_eq!(done["status"], "approved");
    tightened.worker.clone().unwrap().run_until_idle().await.unwrap();
    assert_eq!(m.app.release(&id).await["status"], "dispatched");
}
