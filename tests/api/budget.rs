//! Two daemons on one database share the tenant's one MDE budget: together they never make
//! more calls of an API in a minute than the budget allows, and a 429 answered to one pauses
//! that API for the other until its `Retry-After` ends.

use crate::helpers::*;
use dualkey::clock::{Clock, ManualClock, Monotonic};
use dualkey::mde::Api;
use dualkey::mde::simulator::{FaultAction, RouteKind, SeenRequest, SimulatorConfig};
use dualkey::settings::Settings;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Unisolates a minute, for MDE and for each daemon.
const LIMIT: usize = 10;
/// More approved releases than two minutes of the budget.
const BACKLOG: usize = 25;
/// A minute and the daemons' second of slack: a call no longer counts after it.
const MINUTE_AND_SLACK: Duration = Duration::from_secs(61);
/// Only bounds a hang; every wait below ends long before it.
const HANG_GUARD: Duration = Duration::from_secs(10);

/// Daemon `a` (which takes the requests, its worker driven by the test) and daemon `b`, on one
/// database (SQLite file or PostgreSQL) and one simulator, all on one clock.
async fn two_daemons(sim: SimulatorConfig, tweak: impl Fn(&mut Settings) + Clone) -> (MdeApp, TestApp) {
    let clock = ManualClock::new();
    let sim = start_simulator(sim, &clock).await;
    let a = spawn_on(sim.clone(), &clock, tweak.clone()).await;
    let db_url = a.db_url.clone();
    let b = spawn_on(sim.clone(), &clock, move |s| {
        s.database.url = db_url;
        tweak(s);
    })
    .await;
    let worker = a.worker.clone().unwrap();
    (MdeApp { app: a, sim, worker }, b)
}

/// The database both daemons share, for failure messages: the suite runs on either.
fn backend() -> &'static str {
    if crate::backend::is_postgres() { "PostgreSQL" } else { "SQLite" }
}

fn unisolates(m: &MdeApp) -> Vec<SeenRequest> {
    m.sim.requests().into_iter().filter(|r| r.kind == RouteKind::Unisolate).collect()
}

/// The workers that claimed a release to send it, one entry per claim.
async fn claimers(m: &MdeApp) -> Vec<String> {
    let claims = m.app.audit_actions("dispatch_claimed").await;
    claims.iter().map(|e| e["details"]["worker"].as_str().unwrap().to_string()).collect()
}

/// The earliest task asleep on the clock until about a minute and its slack after `first`: the
/// daemons waiting for the call made then to leave the window.
async fn waiting_for_the_window(clock: &ManualClock, first: Monotonic) -> Monotonic {
    let after = |s| first + Duration::from_secs(s);
    let waiting = clock.wait_for_sleeper_matching(|d| d > after(60) && d <= after(62));
    tokio::time::timeout(HANG_GUARD, waiting).await.expect("the daemons wait on the clock for the window to free")
}

#[tokio::test]
async fn two_daemons_with_a_backlog_never_send_more_than_the_minutes_budget_between_them() {
    let mut sim = test_simulator();
    // MDE answers 429 to the eleventh unisolate of any rolling minute.
    sim.api_limits.push((Api::Unisolate, LIMIT as u32, 1500));
    let (a, b) = two_daemons(sim, |s| {
        s.mde.rate_per_minute = LIMIT as u32;
        s.mde.poll_interval = "1h".parse().unwrap();
        // The clock jumps a minute at a time: a lease that outlasts the jump keeps each waiting
        // claim its own (taking a lapsed one over is tested elsewhere).
        s.mde.lease = "10m".parse().unwrap();
    })
    .await;
    let clock = a.app.clock.clone();
    let mut releases = Vec::new();
    for n in 0..BACKLOG {
        // Each request reads its device (GetMachine, ListActions): those reads share the budget too.
        if n > 0 && n % 8 == 0 {
            clock.advance(MINUTE_AND_SLACK);
        }
        releases.push(a.approved(&machine(n as u32)).await);
    }
    clock.advance(MINUTE_AND_SLACK);

    let stop = CancellationToken::new();
    let b_worker = b.worker.clone().unwrap();
    let _b_runs = tokio::spawn(b_worker.run(stop.clone()));
    eventually("b to spend the unisolate minute alone", async || a.sim.count(RouteKind::Unisolate) == LIMIT).await;
    let b_name = claimers(&a).await[0].clone();
    // `a` has sent nothing, so its own window is empty; the tenant's is full.
    let _a_runs = tokio::spawn(a.worker.clone().run(stop.clone()));
    eventually("a to claim a release", async || claimers(&a).await.iter().any(|w| *w != b_name)).await;
    let mut sent = LIMIT;
    while sent < BACKLOG {
        let wake = waiting_for_the_window(&clock, unisolates(&a)[sent - LIMIT].instant).await;
        assert_eq!(a.sim.count(RouteKind::Unisolate), sent, "nothing more goes out until a call leaves the minute");
        clock.advance_to(wake);
        let next = (sent + LIMIT).min(BACKLOG);
        eventually("the next window's sends", async || a.sim.count(RouteKind::Unisolate) >= next).await;
        sent = next;
    }
    stop.cancel();

    assert_eq!(a.sim.count(RouteKind::Unisolate), BACKLOG, "each release sent once");
    assert_eq!(a.sim.throttled(), 0, "not a single 429 on {}", backend());
    assert!(a.sim.max_calls_in_rolling_minute(RouteKind::Unisolate) <= LIMIT, "on {}", backend());
    let claims = claimers(&a).await;
    assert_eq!(claims.len(), BACKLOG, "no claim was taken over: {claims:?}");
    let by_a = claims.iter().filter(|w| **w != b_name).count();
    assert!(by_a >= 1, "a sent some of the backlog too: {claims:?}");
    for id in &releases {
        let status = a.status(id).await;
        assert!(status == "dispatched" || status == "succeeded", "{status}");
    }
}

async fn request(app: &TestApp, n: u32) -> reqwest::Response {
    let body = json!({"machine_id": machine(n), "comment": "reimaged and scanned clean"});
    app.post("/api/v1/releases", &app.requester(), body).await
}

fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()["retry-after"].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_429_answered_to_one_daemon_pauses_that_api_for_the_other_until_retry_after_ends() {
    let (a, b) = two_daemons(test_simulator(), |_| {}).await;
    a.sim.inject(RouteKind::GetMachine, FaultAction::too_many_requests(300), 1);
    let r = request(&a.app, 1).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after(&r), 300);
    let asked = a.sim.count(RouteKind::GetMachine);

    // The other daemon has made no call at all, yet it does not ask MDE either.
    let r = request(&b, 2).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let wait = retry_after(&r);
    assert!((299..=300).contains(&wait), "Retry-After {wait}: what is left of MDE's");
    assert_eq!(error_code(r).await.1, "mde_busy");
    assert_eq!(a.sim.count(RouteKind::GetMachine), asked, "the paused API was not called ({})", backend());
    assert_eq!(a.app.count("SELECT COUNT(*) FROM releases").await, 0, "nothing stored");

    b.clock.advance(Duration::from_secs(wait));
    assert_eq!(request(&b, 2).await.status(), StatusCode::CREATED, "the pause is over");
    assert_eq!(a.sim.count(RouteKind::GetMachine), asked + 1);
    assert_eq!(a.sim.throttled(), 1, "only the 429 MDE chose to answer");
}

#[tokio::test]
async fn a_429_to_one_daemons_send_holds_the_other_daemons_backlog_until_it_ends() {
    let (a, b) = two_daemons(test_simulator(), |s| s.mde.lease = "30m".parse().unwrap()).await;
    a.sim.inject(RouteKind::Unisolate, FaultAction::too_many_requests(777), 1);
    let refused = a.approved(&machine(1)).await;
    assert_eq!(a.worker.run_until_idle().await.unwrap(), 1);
    assert_eq!(a.status(&refused).await, "approved", "back in the queue until MDE's pause ends");
    let held = a.approved(&machine(2)).await;

    let start = a.app.clock.monotonic();
    let stop = CancellationToken::new();
    let _b_runs = tokio::spawn(b.worker.clone().unwrap().run(stop.clone()));
    let after = |s| start + Duration::from_secs(s);
    let waiting = a.app.clock.wait_for_sleeper_matching(|d| d > after(770) && d <= after(777));
    let wake = tokio::time::timeout(HANG_GUARD, waiting).await.expect("b waits on the clock for the pause to end");
    assert_eq!(a.status(&held).await, "dispatching", "claimed by b");
    assert_eq!(a.sim.count(RouteKind::Unisolate), 1, "b sent nothing while paused ({})", backend());

    a.app.clock.advance_to(wake);
    eventually("b to send once the pause is over", async || a.status(&held).await != "dispatching").await;
    stop.cancel();
    let sent: Vec<SeenRequest> = unisolates(&a).into_iter().filter(|r| r.path.contains(&machine(2))).collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].instant > after(770), "sent once the pause was over");
    assert_eq!(a.sim.throttled(), 1, "only the 429 MDE chose to answer");
    let status = a.status(&held).await;
    assert!(status == "dispatched" || status == "succeeded", "{status}");
}
