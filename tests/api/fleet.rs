//! One view of MDE: requests that never wait on the budget (503 `mde_busy`), cached device facts,
//! and every Unisolate in the tenant seen, those outside dualkey recorded as bypasses.

use crate::helpers::*;
use dualkey::mde::ActionType;
use dualkey::mde::rate::Api;
use dualkey::mde::simulator::RouteKind;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

async fn request(m: &MdeApp, machine: &str) -> reqwest::Response {
    m.app
        .post(
            "/api/v1/releases",
            &m.app.requester(),
            json!({"machine_id": machine, "comment": "reimaged and scanned clean"}),
        )
        .await
}

async fn readyz_bypasses(m: &MdeApp) -> Value {
    let r = m.app.http.get(m.app.url("/readyz")).send().await.unwrap();
    r.json::<Value>().await.unwrap()["bypasses"].clone()
}

async fn bypasses(m: &MdeApp) -> Vec<Value> {
    let r = m.app.get("/api/v1/bypasses", &m.app.auditor()).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["items"].as_array().unwrap().clone()
}

/// Runs the worker's scan: moves the clock past the idle scan interval and works until idle.
async fn scan(m: &MdeApp) {
    m.app.clock.advance(Duration::from_secs(61));
    m.worker.run_until_idle().await.unwrap();
}

#[tokio::test]
async fn a_request_when_the_read_budget_is_spent_answers_503_mde_busy_at_once_and_stores_nothing() {
    let m = spawn_with_mde(test_simulator(), |s| {
        s.mde.rate_per_minute = 1;
        s.mde.rate_per_hour = 10;
    })
    .await;
    assert_eq!(request(&m, &machine(1)).await.status(), StatusCode::CREATED, "one read of each API fits");
    // The clock does not move: an answer at all shows the request did not wait for the minute.
    let r = request(&m, &machine(2)).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((55..=61).contains(&retry), "Retry-After {retry}: when the minute frees a call");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "mde_busy", "{body}");
    assert_eq!(m.app.count("SELECT COUNT(*) FROM releases").await, 1, "nothing stored");
    assert_eq!(m.sim.count(RouteKind::GetMachine), 1, "the refused request never reached MDE");
    // Once the budget frees, the same request goes through.
    m.app.clock.advance(Duration::from_secs(retry));
    assert_eq!(request(&m, &machine(2)).await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_429_from_mde_on_the_read_answers_503_mde_busy_with_mdes_retry_after() {
    let mut sim = test_simulator();
    sim.api_limits.push((Api::GetMachine, 1, 10));
    let m = spawn_with_mde(sim, |_| {}).await;
    assert_eq!(request(&m, &machine(1)).await.status(), StatusCode::CREATED);
    let r = request(&m, &machine(2)).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(error_code(r).await.1, "mde_busy");
    assert_eq!(m.app.count("SELECT COUNT(*) FROM releases").await, 1);
}

#[tokio::test]
async fn facts_the_worker_read_in_bulk_serve_the_next_request_without_reading_the_device() {
    let m = spawn_with_mde(test_simulator(), |_| {}).await;
    let id = m.approved(&machine(1)).await;
    m.drive_until(&id, "succeeded").await;
    let reads = m.sim.count(RouteKind::GetMachine);
    assert_eq!(request(&m, &machine(2)).await.status(), StatusCode::CREATED);
    assert_eq!(m.sim.count(RouteKind::GetMachine), reads, "served from the view, younger than device_max_age");
    // Past device_max_age, the one device is read again (two calls).
    m.app.clock.advance(Duration::from_secs(61));
    let lists = m.sim.count(RouteKind::ListActions);
    assert_eq!(request(&m, &machine(3)).await.status(), StatusCode::CREATED);
    assert_eq!(m.sim.count(RouteKind::GetMachine), reads + 1);
    assert_eq!(m.sim.count(RouteKind::ListActions), lists + 1);
}

#[tokio::test]
async fn dualkeys_own_releases_are_never_bypasses_and_no_scan_follows_them_one_by_one() {
    let m = spawn_with_mde(test_simulator(), |_| {}).await;
    let ids = [m.approved(&machine(1)).await, m.approved(&machine(2)).await];
    for id in &ids {
        m.drive_until(id, "succeeded").await;
    }
    scan(&m).await;
    assert!(bypasses(&m).await.is_empty());
    assert_eq!(readyz_bypasses(&m).await, 0);
    assert_eq!(m.sim.count(RouteKind::GetAction), 0, "the Unisolate list followed both actions");
}

#[tokio::test]
async fn a_portal_unisolate_is_recorded_once_listed_counted_in_readiness_and_acknowledged() {
    let m = spawn_with_mde(test_simulator(), |_| {}).await;
    m.worker.run_until_idle().await.unwrap();
    m.app.clock.advance(Duration::from_secs(1));
    let portal = m
        .sim
        .portal_action(&machine(7), ActionType::Unisolate, "admin@contoso.com", "user called, said it is fine")
        .expect("a seeded machine");
    scan(&m).await;
    scan(&m).await;
    let list = bypasses(&m).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let b = &list[0];
    assert_eq!(b["machine_id"], machine(7));
    assert_eq!(b["mde_action_id"], portal.id);
    assert_eq!(b["requestor"], "admin@contoso.com");
    assert_eq!(b["requestor_comment"], "user called, said it is fine");
    assert_eq!(b["response"], "record");
    assert!(b["reisolation"].is_null());
    let entries = m.app.audit_actions("bypass_detected").await;
    assert_eq!(entries.len(), 1, "recorded once");
    assert_eq!(entries[0]["details"]["mde_action_id"], portal.id);
    assert_eq!(entries[0]["machine_id"], machine(7));
    assert_eq!(readyz_bypasses(&m).await, 1);
    assert_eq!(m.sim.count(RouteKind::Isolate), 0, "record only: the device stays released");
    // A restarted daemon (a new process on the same database) reads the same action: still one.
    let db_url = m.app.db_url.clone();
    let again = spawn_on(m.sim.clone(), &m.app.clock, move |s| s.database.url = db_url).await;
    let restarted = again.worker.clone().unwrap();
    restarted.run_until_idle().await.unwrap();
    m.app.clock.advance(Duration::from_secs(61));
    restarted.run_until_idle().await.unwrap();
    assert_eq!(m.app.audit_actions("bypass_detected").await.len(), 1, "handled once across restarts");

    let bid = b["id"].as_str().unwrap();
    let path = format!("/api/v1/bypasses/{bid}/acknowledge");
    let r = m.app.post(&path, &m.app.requester(), json!({})).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "auditors acknowledge");
    let r = m.app.post(&path, &m.app.auditor(), json!({"comment": "helpdesk ticket 4411"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(readyz_bypasses(&m).await, 0);
    assert_eq!(error_code(m.app.post(&path, &m.app.auditor(), json!({})).await).await.1, "already_acknowledged");
    let unknown = m.app.post("/api/v1/bypasses/nope/acknowledge", &m.app.auditor(), json!({})).await;
    assert_eq!(error_code(unknown).await, (StatusCode::NOT_FOUND, "bypass_not_found".into()));
    assert_eq!(m.app.audit_actions("bypass_acknowledged").await.len(), 1);
}

#[tokio::test]
async fn with_reisolate_a_bypassed_device_is_isolated_again_once_after_the_unisolate_succeeded() {
    let m = spawn_with_mde(test_simulator(), |s| s.policy.on_bypass = Some("reisolate".into())).await;
    m.worker.run_until_idle().await.unwrap();
    m.app.clock.advance(Duration::from_millis(10));
    let portal = m.sim.portal_action(&machine(9), ActionType::Unisolate, "script@contoso.com", "bulk release").unwrap();
    // Seen while still pending: recorded, not yet answered.
    m.worker.run_until_idle().await.unwrap();
    m.app.clock.advance(Duration::from_secs(61));
    m.worker.run_until_idle().await.unwrap();
    assert_eq!(bypasses(&m).await.len(), 1);
    for _ in 0..5 {
        scan(&m).await;
    }
    let isolates: Vec<_> = m.sim.actions_for(&machine(9)).into_iter().filter(|a| a.is(&ActionType::Isolate)).collect();
    let ours: Vec<_> =
        isolates.iter().filter(|a| a.requestor_comment.as_deref().is_some_and(|c| c.contains(&portal.id))).collect();
    assert_eq!(ours.len(), 1, "isolated again exactly once: {isolates:?}");
    let b = &bypasses(&m).await[0];
    assert_eq!(b["response"], "reisolate");
    assert_eq!(b["reisolation"]["status"], "reisolated", "{b}");
    assert_eq!(b["reisolation"]["mde_action_id"], ours[0].id);
    let entries = m.app.audit_actions("bypass_reisolated").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["details"]["bypassing_action_id"], portal.id);
    // The device is isolated again: a new request for it is possible.
    m.app.clock.advance(Duration::from_secs(61));
    assert_eq!(request(&m, &machine(9)).await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn an_unisolate_from_before_the_first_start_is_not_reported() {
    let m = spawn_with_mde(test_simulator(), |_| {}).await;
    // Created before the first scan: before this installation looked, so not reported.
    m.sim.portal_action(&machine(11), ActionType::Unisolate, "old@contoso.com", "last month").unwrap();
    m.app.clock.advance(Duration::from_secs(1));
    m.worker.run_until_idle().await.unwrap();
    scan(&m).await;
    assert!(bypasses(&m).await.is_empty());
}

#[test]
fn a_policy_with_an_unknown_on_bypass_is_refused_by_its_key() {
    let mut p = dualkey::rules::PolicyDocument { on_bypass: Some("shrug".into()), ..Default::default() };
    let err = p.validate("Release.Approve").unwrap_err().to_string();
    assert!(err.contains("on_bypass"), "{err}");
    p.on_bypass = None;
    p.reisolate_type = Some("Selective".into());
    let err = p.validate("Release.Approve").unwrap_err().to_string();
    assert!(err.contains("reisolate_type"), "{err}");
}

/// Counts of the simulator's requests of each kind since `from`, and the 429s among them.
fn calls_since(m: &MdeApp, from: usize) -> (std::collections::BTreeMap<String, usize>, usize) {
    let seen: Vec<_> = m.sim.requests().into_iter().skip(from).filter(|r| r.path.starts_with("/api/")).collect();
    let mut by = std::collections::BTreeMap::new();
    for r in &seen {
        *by.entry(format!("{:?}", r.kind)).or_insert(0) += 1;
    }
    (by, seen.iter().filter(|r| r.status == Some(429)).count())
}

#[tokio::test]
async fn a_200_device_batch_approved_once_is_released_at_the_budget_with_at_most_1_2_calls_a_device_and_no_429() {
    // MDE allows 50 calls a minute per API here (half its own), on both sides, and its actions
    // take the simulator's default 25 s (5 s pending, 20 s in progress), so polls run all along.
    let mut sim = test_simulator();
    sim.rate_per_minute = 50;
    (sim.pending_for, sim.in_progress_for) = (Duration::from_secs(5), Duration::from_secs(20));
    let m = spawn_with_mde(sim, |s| {
        s.mde.rate_per_minute = 50;
        s.mde.poll_interval = "10s".parse().unwrap();
    })
    .await;
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(m.worker.clone().run(stop.clone()));
    let from = m.sim.requests().len();
    let ids: Vec<String> = (0..200).map(machine).collect();
    let r = m
        .app
        .post(
            "/api/v1/release-batches",
            &m.app.requester(),
            json!({"machine_ids": ids, "comment": "outbreak cleanup: reimaged"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let batch: Value = r.json().await.unwrap();
    assert_eq!(batch["counts"]["pending"], 200, "{}", batch["counts"]);
    let bid = batch["id"].as_str().unwrap();
    let r = m.app.post(&format!("/api/v1/release-batches/{bid}/approve"), &m.app.approver("bob"), json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    // The clock stands still while the worker sends a minute's worth (50, at one instant), then
    // moves through the minute (and dualkey's second of slack), four times; then on to the end.
    for window in 1..=4 {
        let expected = 50 * window;
        eventually("a minute's sends", async || m.sim.count(RouteKind::Unisolate) >= expected).await;
        assert_eq!(m.sim.count(RouteKind::Unisolate), expected, "never more than the minute allows");
        // Through the minute by poll_interval, so the scans follow the actions as they would.
        for _ in 0..6 {
            m.app.clock.advance(Duration::from_secs(10));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        m.app.clock.advance(Duration::from_secs(1));
    }
    for _ in 0..100 {
        let b: Value =
            m.app.get(&format!("/api/v1/release-batches/{bid}"), &m.app.auditor()).await.json().await.unwrap();
        if b["counts"]["succeeded"] == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        m.app.clock.advance(Duration::from_secs(1));
    }
    let b: Value = m.app.get(&format!("/api/v1/release-batches/{bid}"), &m.app.auditor()).await.json().await.unwrap();
    assert_eq!(b["counts"]["succeeded"], 200, "{}", b["counts"]);
    stop.cancel();
    running.await.unwrap();
    let (by, throttled) = calls_since(&m, from);
    assert_eq!(throttled, 0, "{by:?}");
    assert_eq!(by.get("Unisolate"), Some(&200));
    assert_eq!(by.get("GetMachine"), None, "no device read alone: {by:?}");
    assert_eq!(by.get("GetAction"), None, "no action polled alone: {by:?}");
    let total: usize = by.values().sum();
    assert!(total <= 240, "{total} MDE calls for 200 devices: {by:?}");
    assert!(m.sim.max_calls_in_rolling_minute(RouteKind::Unisolate) <= 50);
    // Sent at the budget: what the rolling minute allowed from the first unisolate to the last.
    let sends: Vec<_> = m.sim.requests().into_iter().filter(|r| r.kind == RouteKind::Unisolate).collect();
    let drain = sends.last().unwrap().instant.saturating_since(sends[0].instant);
    let allowed = 50 * (drain.as_secs() / 60 + 1);
    assert!(200 * 100 / allowed >= 95, "200 sent where {allowed} were allowed over {drain:?}");
    println!(
        "200-device batch: {total} MDE calls, {:.3} a device, {by:?}; 200 unisolates over {drain:?}",
        total as f64 / 200.0
    );
}
