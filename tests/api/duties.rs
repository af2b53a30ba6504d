//! The worker's duties run independently: a send backlog held up by a slow MDE or by its rate
//! budget never delays a poll or a due re-isolation.

use crate::helpers::*;
use dualkey::mde::simulator::{FaultAction, RouteKind};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const BACKLOG: u32 = 15;
const GLASS: &str = "Release.BreakGlass";

/// A daemon whose policy allows break-glass releases, to be ratified within ten minutes.
async fn glass_app() -> MdeApp {
    let value: toml::Value = toml::from_str("[break_glass]\nenabled = true\nratify_within = \"10m\"\n").unwrap();
    // Actions run for minutes, not the quick simulator's 100 real milliseconds: real time passes
    // while the test sets up (more of it on a slow machine or a networked database), and an
    // action that progressed before the first scan would make that scan count as work. They
    // have ended by the time the test moves the clock 11 minutes.
    let mut sim = test_simulator();
    (sim.pending_for, sim.in_progress_for) = (Duration::from_secs(120), Duration::from_secs(120));
    spawn_with_mde(sim, move |s| {
        s.policy = dualkey::rules::PolicyDocument::from_toml(value).unwrap();
        s.mde.poll_interval = "1m".parse().unwrap();
        // Duties wake when something is due, not on a scan.
        s.mde.scan_interval = "1h".parse().unwrap();
    })
    .await
}

/// Two releases out at MDE (a break-glass one nobody ratifies, and an ordinary one whose
/// action is to be polled), then `BACKLOG` approved releases queued behind them; returns the
/// break-glass release, the ordinary one and the backlog.
async fn sent_then_backlog(m: &MdeApp) -> (String, String, Vec<String>) {
    let gina = m.app.token("gina", &[GLASS]);
    let comment = "Ransomware cleanup verified; payroll server must be back before the bank cutoff";
    let r =
        m.app.post("/api/v1/releases", &gina, json!({"machine_id": SEEDED, "comment": comment, "break_glass": true}));
    let r = r.await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let glass = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let ordinary = m.approved(SEEDED_2).await;
    assert_eq!(m.worker.run_until_idle().await.unwrap(), 2, "both sent; their first polls are a minute away");
    let mut backlog = Vec::new();
    for n in 0..BACKLOG {
        backlog.push(m.approved(&machine(n)).await);
    }
    (glass, ordinary, backlog)
}

/// Runs the background worker while the first backlog send is held up, moves the clock past
/// the ordinary release's poll and the break-glass deadline, and checks both duties are done
/// while the backlog still waits.
async fn poll_and_reisolation_overtake_the_backlog(m: &MdeApp, fault: FaultAction, times: u32, held_up: &str) {
    let (glass, ordinary, backlog) = sent_then_backlog(m).await;
    m.sim.inject(RouteKind::Unisolate, fault, times);
    let sent_before = m.sim.count(RouteKind::Unisolate);
    let stop = CancellationToken::new();
    let _worker = tokio::spawn(m.worker.clone().run(stop.clone()));
    eventually("the first backlog send to reach MDE", async || m.sim.count(RouteKind::Unisolate) == sent_before + 1)
        .await;
    m.app.clock.advance(Duration::from_secs(11 * 60));
    eventually("the poll to record the ordinary release's success", async || m.status(&ordinary).await == "succeeded")
        .await;
    eventually("the break-glass device to be isolated again", async || m.status(&glass).await == "reisolated").await;
    assert_eq!(m.sim.count(RouteKind::Unisolate), sent_before + 1, "the backlog is still {held_up}");
    for id in &backlog {
        let s = m.status(id).await;
        assert!(s == "approved" || s == "dispatching", "no backlog release went out meanwhile: {s}");
    }
    assert_eq!(m.sim.count(RouteKind::Isolate), 1);
    stop.cancel();
}

#[tokio::test]
async fn a_poll_and_a_due_reisolation_complete_while_slow_sends_hold_up_a_backlog() {
    let m = glass_app().await;
    // MDE takes a day to answer each unisolate (on the test's clock, which moves 11 minutes).
    let slow = FaultAction::Delay(Duration::from_secs(24 * 3600));
    poll_and_reisolation_overtake_the_backlog(&m, slow, BACKLOG, "in its first send").await;
}

#[tokio::test]
async fn a_send_waiting_for_the_unisolate_budget_holds_up_no_poll_and_no_reisolation() {
    let m = glass_app().await;
    // The first backlog send is refused for an hour: the next one waits for the unisolate budget.
    let refused = FaultAction::too_many_requests(3600);
    poll_and_reisolation_overtake_the_backlog(&m, refused, 1, "waiting for the unisolate budget").await;
}

#[tokio::test]
async fn a_send_backlog_reads_in_bulk_and_leaves_the_read_budget_to_a_due_reisolation() {
    // One daemon takes the requests; a second, on the same database with a budget of 10 calls a
    // minute per API, is the worker. Sends re-check the device from one bulk read of the view,
    // not a read each, so a backlog draining at the unisolate limit leaves the reads to a
    // re-isolation that falls due meanwhile.
    let policy: toml::Value = toml::from_str("[break_glass]\nenabled = true\nratify_within = \"90s\"\n").unwrap();
    let clock = dualkey::clock::ManualClock::new();
    let sim = start_simulator(test_simulator(), &clock).await;
    let api = spawn_on(sim.clone(), &clock, {
        let policy = policy.clone();
        move |s| s.policy = dualkey::rules::PolicyDocument::from_toml(policy).unwrap()
    })
    .await;
    let db_url = api.db_url.clone();
    let worker_app = spawn_on(sim.clone(), &clock, move |s| {
        s.database.url = db_url;
        s.policy = dualkey::rules::PolicyDocument::from_toml(policy).unwrap();
        (s.mde.rate_per_minute, s.mde.rate_per_hour) = (10, 100);
        s.mde.poll_interval = "1h".parse().unwrap();
        s.mde.scan_interval = "1h".parse().unwrap();
    })
    .await;
    let m = MdeApp { app: api, sim: sim.clone(), worker: worker_app.worker.clone().unwrap() };
    let gina = m.app.token("gina", &[GLASS]);
    let comment = "Ransomware cleanup verified; payroll server must be back before the bank cutoff";
    let r =
        m.app.post("/api/v1/releases", &gina, json!({"machine_id": SEEDED, "comment": comment, "break_glass": true}));
    let glass = r.await.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    for n in 0..BACKLOG {
        m.approved(&machine(n)).await;
    }
    // The requests' device reads count in the budget both daemons share: let their minute pass
    // (the break-glass deadline, 90 s after its request, falls due when the clock moves below).
    m.app.clock.advance(Duration::from_secs(61));
    // Reads from here on are the worker's (the requests read each device at the API daemon).
    let (lists_before, gets_before) = (m.sim.count(RouteKind::ListActions), m.sim.count(RouteKind::GetMachine));
    let stop = CancellationToken::new();
    let _worker = tokio::spawn(m.worker.clone().run(stop.clone()));
    // The break-glass release and 9 of the backlog go out: the whole unisolate minute. The send
    // duty then sleeps until the first send leaves the minute.
    eventually("the unisolate minute to be spent", async || m.sim.count(RouteKind::Unisolate) == 10).await;
    let reads = m.sim.count(RouteKind::ListActions) - lists_before;
    assert!(reads <= 3, "{reads} action reads for 10 sends: the view's, not one a send");
    assert_eq!(m.sim.count(RouteKind::GetMachine), gets_before, "nor a device read a send");

    m.app.clock.advance(Duration::from_secs(31));
    eventually("the break-glass device to be isolated again", async || m.status(&glass).await == "reisolated").await;
    assert_eq!(m.sim.count(RouteKind::Unisolate), 10, "the backlog still waits for the next minute");
    stop.cancel();
    drop(worker_app);
}
