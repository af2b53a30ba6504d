//! A release is for an isolated device: a request for a device that is not isolated is refused
//! at once, and a release overtaken by another dualkey release says which one.

use crate::helpers::*;
use dualkey::mde::simulator::{RouteKind, SeedMachine, SimulatorConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const NEVER_ISOLATED: &str = "0000000000000000000000000000000000c1ea11";

/// The test simulator whose actions finish at once, so no test waits for MDE.
fn instant_simulator() -> SimulatorConfig {
    let mut never = SeedMachine::isolated(NEVER_ISOLATED, "desktop-clean-01.contoso.com");
    never.isolated = false;
    let mut config =
        SimulatorConfig { pending_for: Duration::ZERO, in_progress_for: Duration::ZERO, ..test_simulator() };
    config.machines.push(never);
    config
}

async fn request(m: &MdeApp, machine_id: &str) -> reqwest::Response {
    let body = json!({"machine_id": machine_id, "comment": "reimaged and scanned clean"});
    m.app.post("/api/v1/releases", &m.app.requester(), body).await
}

/// The error of a refused request, after checking it is 422 `device_not_isolated`.
async fn not_isolated(r: reqwest::Response) -> Value {
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "device_not_isolated", "{body}");
    body["error"].clone()
}

#[tokio::test]
async fn a_request_for_a_device_that_was_never_isolated_is_422_and_stores_nothing() {
    let m = spawn_with_mde(instant_simulator(), |_| {}).await;
    let error = not_isolated(request(&m, NEVER_ISOLATED).await).await;
    assert!(error["message"].as_str().unwrap().contains("shows no isolation"), "{error}");
    assert_eq!(m.app.count("SELECT COUNT(*) FROM releases").await, 0);
    let refused = m.app.audit_actions("request_refused").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["details"]["reason"], "device_not_isolated");
    assert_eq!(refused[0]["machine_id"], NEVER_ISOLATED);
    assert_eq!(m.sim.count(RouteKind::Unisolate), 0);
}

#[tokio::test]
async fn a_request_for_a_device_dualkey_already_released_is_422_and_names_that_release() {
    let m = spawn_with_mde(instant_simulator(), |_| {}).await;
    let first = m.approved(SEEDED).await;
    m.drive_until(&first, "succeeded").await;
    let error = not_isolated(request(&m, SEEDED).await).await;
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(&format!("released by dualkey release {first}")), "{message}");
    assert_eq!(m.app.count("SELECT COUNT(*) FROM releases").await, 1, "only the first release is stored");
    assert_eq!(m.sim.unisolate_count(SEEDED), 1);
}

#[tokio::test]
async fn a_request_for_a_device_released_by_hand_is_422_and_names_who_released_it() {
    let m = spawn_with_mde(instant_simulator(), |_| {}).await;
    let client = m.direct_client();
    client.unisolate(SEEDED, "released by hand in the portal").await.unwrap();
    let error = not_isolated(request(&m, SEEDED).await).await;
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("released by dualkey release worker"), "MDE's requestor: {message}");
    assert_eq!(m.app.count("SELECT COUNT(*) FROM releases").await, 0);
}

#[tokio::test]
async fn the_recheck_names_the_earlier_dualkey_release_that_released_the_device() {
    let m = spawn_with_mde(instant_simulator(), |_| {}).await;
    let client = m.direct_client();
    let first = m.approved(SEEDED).await;
    m.drive_until(&first, "succeeded").await;
    client.isolate(SEEDED, "new incident INC-9", dualkey::mde::IsolationType::Full).await.unwrap();
    let second = m.approved(SEEDED).await;
    // An Unisolate carrying the first release's marker lands after the second was approved (as
    // a late duplicate of the first release's action would, MDE_API.md section 3).
    let late =
        format!("{} Released by dualkey two-person rule.", dualkey::domain::ReleaseId::parse(&first).unwrap().marker());
    client.unisolate(SEEDED, &late).await.unwrap();
    // The re-check sees what a poll would: the actions no older than poll_interval.
    m.app.clock.advance(Duration::from_millis(20));
    m.worker.run_until_idle().await.unwrap();
    let r = m.app.release(&second).await;
    assert_eq!(r["status"], "failed", "{r}");
    let error = r["last_error"].as_str().unwrap();
    assert!(
        error.contains(&format!("released by dualkey release {first} (requested by alice; approved by bob)")),
        "{error}"
    );
    assert!(!error.contains("outside dualkey") && !error.contains("release worker"), "{error}");
    assert_eq!(m.sim.unisolate_count(SEEDED), 2, "the second release sent nothing");
}
