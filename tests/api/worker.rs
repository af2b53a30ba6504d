//! The release worker against the MDE simulator over real HTTP.

use crate::helpers::*;
use dualkey::clock::Clock;
use dualkey::mde::simulator::{FaultAction, RouteKind, SeedMachine, SimulatorConfig};
use serde_json::Value;
use std::time::Duration;

fn actions_named(entries: &[Value], action: &str) -> Vec<Value> {
    entries.iter().filter(|e| e["action"] == action).cloned().collect()
}

#[tokio::test]
async fn an_approved_release_is_sent_once_and_followed_to_succeeded() {
    let m = spawn_with_mde(quick_simulator(), |_| {}).await;
    let id = m.approved(SEEDED).await;
    let done = m.drive_until(&id, "succeeded").await;
    assert_eq!(done["mde_action_status"], "Succeeded");
    assert_eq!(done["attempts"], 1);
    let actions = m.sim.actions_for(SEEDED);
    let unisolates: Vec<_> =
        actions.iter().filter(|a| a.action_type.as_ref().is_some_and(|t| t.as_str() == "Unisolate")).collect();
    assert_eq!(unisolates.len(), 1);
    assert_eq!(done["mde_action_id"], unisolates[0].id.as_str());
    let comment = unisolates[0].requestor_comment.clone().unwrap();
    for part in [
        format!("[dualkey:{id}]"),
        "Requested by alice".into(),
        "approved by bob".into(),
        "reimaged and scanned clean".into(),
    ] {
        assert!(comment.contains(&part), "{part} missing from {comment}");
    }
    let audit = m.app.audit().await;
    let names: Vec<&str> =
        audit.iter().filter(|e| e["release_id"] == id.as_str()).map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        names[..5],
        ["release_requested", "approval_recorded", "release_approved", "dispatch_claimed", "unisolate_accepted"]
    );
    assert_eq!(names.last(), Some(&"release_succeeded"));
    assert!(names[5..names.len() - 1].iter().all(|n| *n == "mde_action_progressed"), "{names:?}");
    let accepted = actions_named(&audit, "unisolate_accepted");
    assert_eq!(accepted[0]["details"]["http_status"], 201);
    assert_eq!(accepted[0]["details"]["mde_action_id"], done["mde_action_id"]);
    assert_eq!(actions_named(&audit, "release_succeeded").len(), 1);
}

#[tokio::test]
async fn the_background_worker_wakes_on_approval_without_waiting_for_a_scan() {
    let m = spawn_with_mde(quick_simulator(), |s| {
        s.mde.worker_enabled = true;
        s.mde.scan_interval = "1h".parse().unwrap();
    })
    .await;
    let id = m.approved(SEEDED).await;
    for _ in 0..500 {
        if m.app.release(&id).await["status"] == "succeeded" {
            assert_eq!(m.sim.unisolate_count(SEEDED), 1);
            return;
        }
        // Polls and the simulator's action lifecycle run on the clock; a scan is an hour away.
        m.app.clock.advance(Duration::from_millis(20));
    }
    panic!("the background worker did not release the device: {}", m.app.release(&id).await);
}

#[tokio::test]
async fn the_background_worker_sleeps_on_the_clock_until_the_next_poll_is_due() {
    let m = spawn_with_mde(quick_simulator(), |s| {
        s.mde.worker_enabled = true;
        s.mde.scan_interval = "1h".parse().unwrap();
        s.mde.poll_interval = "1h".parse().unwrap();
    })
    .await;
    let id = m.approved(SEEDED).await;
    let status = async || m.app.release(&id).await["status"].as_str().unwrap().to_string();
    for _ in 0..500 {
        if status().await == "dispatched" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(status().await, "dispatched", "sent at once on approval");
    // The worker sleeps on the clock until the poll an hour away; moving the clock wakes it.
    let now = m.app.clock.monotonic();
    let asleep = m.app.clock.wait_for_sleeper_matching(|d| d - now > Duration::from_secs(1800));
    let poll_at = tokio::time::timeout(Duration::from_secs(10), asleep).await.expect("the worker sleeps on the clock");
    m.app.clock.advance_to(poll_at);
    for _ in 0..500 {
        if status().await == "succeeded" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("the worker did not poll when the clock reached the poll: {}", m.app.release(&id).await);
}

#[tokio::test]
async fn a_429_is_retried_no_sooner_than_its_retry_after() {
    let m = spawn_with_mde(quick_simulator(), |_| {}).await;
    m.sim.inject(RouteKind::Unisolate, FaultAction::too_many_requests(1), 1);
    let id = m.approved(SEEDED).await;
    m.worker.run_until_idle().await.unwrap();
    let r = m.app.release(&id).await;
    assert_eq!(r["status"], "approved", "back in the queue after a 429");
    assert!(r["last_error"].as_str().unwrap().contains("TooManyRequests"));
    let failed = m.app.audit_actions("dispatch_attempt_failed").await;
    assert_eq!(failed[0]["details"]["http_status"], 429);
    assert_eq!(failed[0]["details"]["mde_error_code"], "TooManyRequests");
    assert_eq!(failed[0]["details"]["retryable"], true);
    m.drive_until(&id, "dispatched").await;
    let sends: Vec<_> = m.sim.requests().into_iter().filter(|r| r.kind == RouteKind::Unisolate).collect();
    assert_eq!(sends.len(), 2);
    assert!(sends[1].instant - sends[0].instant >= Duration::from_secs(1), "Retry-After: 1 was not honoured");
    assert_eq!(m.sim.unisolate_count(SEEDED), 1);
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_until_mde_accepts() {
    let m = spawn_with_mde(quick_simulator(), |_| {}).await;
    m.sim.inject(RouteKind::Unisolate, FaultAction::status(503), 2);
    let id = m.approved(SEEDED).await;
    let r = m.drive_until(&id, "succeeded").await;
    assert_eq!(r["attempts"], 3);
    assert_eq!(m.sim.count(RouteKind::Unisolate), 3);
    assert_eq!(m.sim.unisolate_count(SEEDED), 1);
    let failed = m.app.audit_actions("dispatch_attempt_failed").await;
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|e| e["details"]["http_status"] == 503));
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let m = spawn_with_mde(quick_simulator(), |_| {}).await;
    m.sim.inject(RouteKind::Unisolate, FaultAction::Drop, 1);
    let id = m.approved(SEEDED).await;
    let r = m.drive_until(&id, "succeeded").await;
    assert_eq!(r["attempts"], 2);
    assert_eq!(m.sim.unisolate_count(SEEDED), 1);
    let failed = m.app.audit_actions("dispatch_attempt_failed").await;
    assert!(failed[0]["details"]["http_status"].is_null(), "no HTTP answer: {}", failed[0]);
}

#[tokio::test]
async fn an_answer_lost_after_mde_acted_is_adopted_not_sent_again() {
    let m = spawn_with_mde(quick_simulator(), |_| {}).await;
    m.sim.inject(RouteKind::Unisolate, FaultAction::ProcessThenDrop, 1);
    let id = m.approved(SEEDED).await;
    let r = m.drive_until(&id, "succeeded").await;
    assert_eq!(m.sim.unisolate_count(SEEDED), 1, "exactly one MDE action");
    assert_eq!(m.sim.count(RouteKind::Unisolate), 1, "the second attempt listed instead of sending");
    let adopted = m.app.audit_actions("mde_action_adopted").await;
    assert_eq!(adopted.len(), 1);
    assert_eq!(adopted[0]["details"]["found_by"], "list_before_resend");
    assert_eq!(adopted[0]["details"]["mde_action_id"], r["mde_action_id"]);
}

#[tokio::test]
async fn an_expired_mde_token_is_refreshed_once_and_the_call_retried() {
    let m = spawn_with_mde(quick_simulator(), |_| {}).await;
    let first = m.approved(SEEDED).await;
    m.drive_until(&first, "dispatched").await;
    assert_eq!(m.sim.count(RouteKind::Token), 1);
    m.sim.expire_all_tokens();
    let second = m.approved(SEEDED_2).await;
    let r = m.drive_until(&second, "dispatched").await;
    assert_eq!(r["attempts"], 1, "the refresh happened inside one attempt");
    assert_eq!(m.sim.count(RouteKind::Token), 2);
    let answered_401 = m.sim.requests().iter().filter(|r| r.status == Some(401)).count();
    assert!(answered_401 >= 1);
}

#[tokio::test]
async fn a_404_from_mde_at_send_time_fails_at_once_with_mdes_reason() {
    let m = spawn_with_mde(quick_simulator(), |_| {}).await;
    m.sim.inject(
        RouteKind::Unisolate,
        FaultAction::Respond {
            status: 404,
            code: "ResourceNotFound".into(),
            message: format!("Machine {SEEDED} was not found. OrgId: test."),
            retry_after: None,
        },
        1,
    );
    let id = m.approved(SEEDED).await;
    m.worker.run_until_idle().await.unwrap();
    let r = m.app.release(&id).await;
    assert_eq!(r["status"], "failed");
    assert_eq!(r["attempts"], 1);
    assert!(r["last_error"].as_str().unwrap().contains("ResourceNotFound"), "{r}");
    let failed = m.app.audit_actions("release_failed").await;
    assert_eq!(failed.len(), 1);
    let attempt = &m.app.audit_actions("dispatch_attempt_failed").await[0];
    assert_eq!(attempt["details"]["http_status"], 404);
    assert_eq!(attempt["details"]["mde_error_code"], "ResourceNotFound");
    assert!(attempt["details"]["mde_error_message"].as_str().unwrap().contains("was not found"));
    assert_eq!(attempt["details"]["retryable"], false);
}

#[tokio::test]
async fn a_403_fails_at_once() {
    let m = spawn_with_mde(quick_simulator(), |_| {}).await;
    m.sim.inject(RouteKind::Unisolate, FaultAction::status(403), 1);
    let id = m.approved(SEEDED).await;
    m.worker.run_until_idle().await.unwrap();
    let r = m.app.release(&id).await;
    assert_eq!(r["status"], "failed");
    assert!(r["last_error"].as_str().unwrap().contains("403"));
    assert_eq!(m.sim.count(RouteKind::Unisolate), 1);
}

#[tokio::test]
async fn retries_stop_at_max_attempts_and_the_release_fails() {
    let m = spawn_with_mde(quick_simulator(), |s| s.mde.max_attempts = 3).await;
    m.sim.inject(RouteKind::Unisolate, FaultAction::status(500), 10);
    let id = m.approved(SEEDED).await;
    let r = m.drive_until(&id, "failed").await;
    assert_eq!(r["attempts"], 3);
    assert_eq!(m.sim.count(RouteKind::Unisolate), 3);
    let failed = m.app.audit_actions("release_failed").await;
    assert!(failed[0]["details"]["reason"].as_str().unwrap().contains("gave up after 3 attempts"));
}

#[tokio::test]
async fn an_mde_action_that_ends_failed_fails_the_release() {
    let mut sim = quick_simulator();
    sim.machines[0].final_status = dualkey::mde::ActionStatus::TimeOut;
    let m = spawn_with_mde(sim, |_| {}).await;
    let id = m.approved(SEEDED).await;
    let r = m.drive_until(&id, "failed").await;
    assert_eq!(r["mde_action_status"], "TimeOut");
    assert_eq!(actions_named(&m.app.audit().await, "release_failed")[0]["details"]["mde_action_status"], "TimeOut");
}

/// The unisolate calls the simulator received, in arrival order.
fn sends_seen(m: &MdeApp) -> Vec<dualkey::mde::simulator::SeenRequest> {
    m.sim.requests().into_iter().filter(|r| r.kind == RouteKind::Unisolate).collect()
}

#[tokio::test]
async fn a_backlog_larger_than_the_minute_limit_drains_oldest_first_without_a_single_429() {
    // MDE allows 3 unisolates a minute here (reads stay at 100), so 5 releases need a second
    // window. One daemon takes the requests; a second one, on the same database and with a
    // budget of 3 a minute, is the worker. Both and the simulator share one clock.
    let ids: Vec<String> = (0..5).map(|n| machine(100 + n)).collect();
    let sim = SimulatorConfig {
        machines: ids.iter().map(|id| SeedMachine::isolated(id, "host.contoso.com")).collect(),
        api_limits: vec![(dualkey::mde::Api::Unisolate, 3, 100)],
        ..quick_simulator()
    };
    let clock = dualkey::clock::ManualClock::new();
    let sim = start_simulator(sim, &clock).await;
    let api = spawn_on(sim.clone(), &clock, |_| {}).await;
    let db_url = api.db_url.clone();
    let worker_app = spawn_on(sim.clone(), &clock, move |s| {
        s.database.url = db_url;
        s.mde.rate_per_minute = 3;
        s.mde.rate_per_hour = 100;
        s.mde.poll_interval = "1h".parse().unwrap();
    })
    .await;
    let worker = worker_app.worker.clone().unwrap();
    let m = MdeApp { app: api, sim: sim.clone(), worker };
    let mut releases = Vec::new();
    for id in &ids {
        releases.push(m.approved(id).await);
    }
    // The requests' device reads count in the budget both daemons share: let their minute pass,
    // so the worker's own reads before sending fit its budget of 3.
    clock.advance(Duration::from_secs(61));
    // The worker sends the first window's three, then waits on the clock for the minute to pass.
    let drain = tokio::spawn({
        let worker = m.worker.clone();
        async move { worker.run_until_idle().await }
    });
    for _ in 0..500 {
        if m.sim.count(RouteKind::Unisolate) == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(m.sim.count(RouteKind::Unisolate), 3, "the first window's sends");
    // The worker sleeps on the clock until the first send leaves its window (MDE's minute plus a
    // second of slack); the daemons' sweepers sleep only 30 s.
    let first = sends_seen(&m)[0].instant;
    let waiting = clock.wait_for_sleeper_matching(|d| d > first + Duration::from_secs(59));
    let wake = tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("the worker waits on the clock");
    assert_eq!(m.sim.count(RouteKind::Unisolate), 3, "nothing more is sent while the window is full");
    clock.advance_to(wake);
    let done = tokio::time::timeout(Duration::from_secs(10), drain).await.expect("the backlog drains").unwrap();
    // Five sends, and the scan that follows them once they are out.
    assert!(done.unwrap() >= 5);
    let sends = sends_seen(&m);
    assert!(sends.iter().all(|r| r.status == Some(201)), "{sends:?}");
    assert_eq!(m.sim.requests().iter().filter(|r| r.status == Some(429)).count(), 0);
    assert!(m.sim.max_calls_in_rolling_minute(RouteKind::Unisolate) <= 3);
    let order: Vec<String> = sends.iter().map(|r| r.path.split('/').nth(3).unwrap().to_string()).collect();
    assert_eq!(order, ids, "oldest approval first");
    for id in &releases {
        let status = m.app.release(id).await["status"].as_str().unwrap().to_string();
        assert!(status == "dispatched" || status == "succeeded", "{status}");
    }
    drop(worker_app);
}

#[tokio::test]
async fn the_daemon_authenticates_to_mde_with_a_certificate_from_files() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mde");
    let sim = SimulatorConfig {
        client_secret: None,
        certificate_pem: Some(std::fs::read_to_string(fixtures.join("client.crt")).unwrap()),
        ..quick_simulator()
    };
    let m = spawn_with_mde(sim, |s| {
        s.mde.client_secret = None;
        s.mde.certificate_file = Some(fixtures.join("client.crt"));
        s.mde.private_key_file = Some(fixtures.join("client.key"));
    })
    .await;
    let id = m.approved(SEEDED).await;
    m.drive_until(&id, "succeeded").await;
    let token_calls: Vec<_> = m.sim.requests().into_iter().filter(|r| r.kind == RouteKind::Token).collect();
    assert_eq!(token_calls.len(), 1);
    assert_eq!(token_calls[0].status, Some(200), "the endpoint verified the signed assertion");
}

#[tokio::test]
async fn a_certificate_signed_assertion_with_the_wrong_key_never_releases_anything() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mde");
    let sim = SimulatorConfig {
        client_secret: None,
        certificate_pem: Some(std::fs::read_to_string(fixtures.join("client.crt")).unwrap()),
        ..quick_simulator()
    };
    let m = spawn_with_mde(sim, |s| {
        s.mde.client_secret = None;
        s.mde.certificate_file = Some(fixtures.join("client.crt"));
        s.mde.private_key_file = Some(fixtures.join("other.key"));
    })
    .await;
    // The device cannot even be read, so the request is refused and nothing is stored.
    let r = m
        .app
        .post(
            "/api/v1/releases",
            &m.app.requester(),
            serde_json::json!({"machine_id": SEEDED, "comment": "reimaged and scanned clean"}),
        )
        .await;
    assert_eq!(error_code(r).await, (reqwest::StatusCode::SERVICE_UNAVAILABLE, "mde_unavailable".into()));
    assert_eq!(m.app.count("SELECT COUNT(*) FROM releases").await, 0);
    assert_eq!(m.sim.count(RouteKind::Unisolate), 0);
}

/// A simulator whose actions stay Pending long enough to collide with.
fn slow_simulator() -> SimulatorConfig {
    SimulatorConfig { pending_for: Duration::from_secs(30), ..quick_simulator() }
}

/// Sends an unisolate for `machine_id` straight to the simulator, as someone outside dualkey
/// (or a lost earlier attempt of dualkey's) would.
async fn unisolate_directly(m: &MdeApp, machine_id: &str, comment: &str) -> String {
    m.direct_client().unisolate(machine_id, comment).await.unwrap().id
}

#[tokio::test]
async fn active_request_already_exists_with_our_marker_adopts_that_action() {
    let m = spawn_with_mde(slow_simulator(), |_| {}).await;
    let id = m.approved(SEEDED).await;
    let ours = format!(
        "{} Released by dualkey two-person rule (earlier attempt)",
        dualkey::domain::ReleaseId::parse(&id).unwrap().marker()
    );
    let existing = unisolate_directly(&m, SEEDED, &ours).await;
    m.worker.run_until_idle().await.unwrap();
    let r = m.app.release(&id).await;
    assert_eq!(r["status"], "dispatched");
    assert_eq!(r["mde_action_id"], existing.as_str());
    assert_eq!(m.sim.unisolate_count(SEEDED), 1, "no second action");
    let adopted = m.app.audit_actions("mde_action_adopted").await;
    assert_eq!(adopted[0]["details"]["found_by"], "active_request_already_exists");
}

#[tokio::test]
async fn active_request_already_exists_from_someone_else_waits_and_retries() {
    let m = spawn_with_mde(slow_simulator(), |_| {}).await;
    unisolate_directly(&m, SEEDED, "released by hand in the portal").await;
    let id = m.approved(SEEDED).await;
    m.worker.run_until_idle().await.unwrap();
    let r = m.app.release(&id).await;
    assert_eq!(r["status"], "approved", "not ours: wait for it to end, then try again: {r}");
    assert!(r["last_error"].as_str().unwrap().contains("ActiveRequestAlreadyExists"));
    let failed = m.app.audit_actions("dispatch_attempt_failed").await;
    assert_eq!(failed[0]["details"]["mde_error_code"], "ActiveRequestAlreadyExists");
    assert_eq!(failed[0]["details"]["retryable"], true);
    assert!(m.app.audit_actions("mde_action_adopted").await.is_empty());
}
