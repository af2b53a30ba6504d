//! The client's own rate limiting, bounded waits and Retry-After handling, seen from the
//! simulator, and the simulator's shutdown. The client and the simulator share a test clock: a waiting call is
//! seen asleep on it, until a deadline the test checks, and the test moves the clock to wake it.

mod mde_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dualkey::clock::ManualClock;
use dualkey::mde::simulator::{FaultAction, RouteKind, SimulatorHandle};
use dualkey::mde::{ActionQuery, ActionType, Api, MachineQuery, MdeClient, MdeError, RateLimiter, RollingWindow, Wait};
use mde_support::*;

fn client_limited_to(sim: &SimulatorHandle, clock: &ManualClock, per_minute: u32) -> MdeClient {
    let mut config = config_for(
        sim,
        dualkey::mde::MdeCredential::ClientSecret(dualkey::secret::Secret::new(
            dualkey::mde::simulator::DEV_CLIENT_SECRET,
        )),
    );
    config.rate_per_minute = per_minute;
    MdeClient::new(config, Arc::new(clock.clone())).unwrap()
}

/// When the simulator received the `n`-th request of `kind`, on the shared clock.
fn seen(sim: &SimulatorHandle, kind: RouteKind, n: usize) -> dualkey::clock::Monotonic {
    sim.requests().into_iter().filter(|r| r.kind == kind).nth(n).expect("the request arrived").instant
}

#[tokio::test]
async fn the_client_waits_for_its_window_instead_of_sending_over_the_limit() {
    let clock = ManualClock::new();
    let sim = start_on(fast_config(), &clock).await;
    let client = Arc::new(client_limited_to(&sim, &clock, 2));
    client.get_machine(MACHINE).await.unwrap();
    client.get_machine(MACHINE).await.unwrap();

    // The third call may only go a minute after the first: it sleeps on the clock until then.
    let third = tokio::spawn({
        let client = client.clone();
        async move { client.get_machine(MACHINE).await }
    });
    let wake = sleeper(&clock).await;
    assert_eq!(sim.count(RouteKind::GetMachine), 2, "the third call was sent within the minute");
    assert!(
        wake - seen(&sim, RouteKind::GetMachine, 0) >= Duration::from_secs(60),
        "it wakes a minute after the first"
    );
    // Another API's budget is untouched.
    client.get_action(&uuid::Uuid::new_v4().to_string()).await.unwrap_err();
    assert_eq!(sim.count(RouteKind::GetAction), 1);

    clock.advance_to(wake);
    third.await.unwrap().unwrap();
    assert_eq!(sim.count(RouteKind::GetMachine), 3);
    assert_eq!(sim.max_calls_in_rolling_minute(RouteKind::GetMachine), 2);
}

#[tokio::test]
async fn after_a_429_the_client_holds_that_api_for_retry_after() {
    let clock = ManualClock::new();
    let sim = start_on(fast_config(), &clock).await;
    let client = Arc::new(client_on(&sim, &clock));
    sim.inject(RouteKind::GetMachine, FaultAction::too_many_requests(30), 1);
    let err = client.get_machine(MACHINE).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));

    let next = tokio::spawn({
        let client = client.clone();
        async move { client.get_machine(MACHINE).await }
    });
    let wake = sleeper(&clock).await;
    assert_eq!(sim.count(RouteKind::GetMachine), 1, "the call was sent before Retry-After ran out");
    let refused = seen(&sim, RouteKind::GetMachine, 0);
    assert!(wake - refused >= Duration::from_secs(30), "it wakes when Retry-After runs out");

    clock.advance_to(wake);
    next.await.unwrap().unwrap();
    assert!(seen(&sim, RouteKind::GetMachine, 1) - refused >= Duration::from_secs(30));
}

// The default test runtime is single-threaded: a spawned task runs when the test yields, so
// each waiter is queued before the next one is spawned.
#[tokio::test]
async fn waiting_callers_are_served_in_arrival_order() {
    let clock = ManualClock::new();
    let limiter = Arc::new(RateLimiter::new(RollingWindow::new(100, 1000), Arc::new(clock.clone())));
    limiter.block_for(Duration::from_secs(3600));
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for n in 0..5 {
        let (limiter, order) = (limiter.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            limiter.acquire().await;
            order.lock().unwrap().push(n);
        }));
        tokio::task::yield_now().await;
    }
    clock.advance_to(sleeper(&clock).await);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn a_shut_down_simulator_refuses_connections() {
    let sim = start(fast_config()).await;
    let url = format!("{}/api/machines/{MACHINE}", sim.base_url());
    sim.shutdown().await;
    let err = reqwest::get(&url).await.unwrap_err();
    assert!(err.is_connect(), "{err}");
}

#[tokio::test]
async fn a_bounded_wait_answers_busy_at_once_when_the_budget_frees_too_late() {
    let clock = ManualClock::new();
    let sim = start_on(fast_config(), &clock).await;
    let client = client_limited_to(&sim, &clock, 2);
    client.get_machine(MACHINE).await.unwrap();
    client.get_machine(MACHINE).await.unwrap();

    let err = client.get_machine_waiting(MACHINE, Wait::AtMost(Duration::from_secs(30))).await.unwrap_err();
    let MdeError::Busy { api, retry_after } = err else { panic!("expected Busy, got {err:?}") };
    assert_eq!(api, Api::GetMachine);
    assert!(retry_after > Duration::from_secs(30) && retry_after <= Duration::from_secs(61), "{retry_after:?}");
    assert_eq!(clock.next_deadline(), None, "it did not wait");
    assert_eq!(sim.count(RouteKind::GetMachine), 2, "nothing was sent");
    let err = client.get_machine_waiting(MACHINE, Wait::AtMost(Duration::ZERO)).await.unwrap_err();
    assert!(err.is_retryable() && err.status().is_none(), "{err:?}");
    assert!(err.to_string().contains("rate budget"), "{err}");
    // Another API's budget is its own.
    client.list_machine_actions_waiting(MACHINE, Wait::AtMost(Duration::ZERO)).await.unwrap();
}

#[tokio::test]
async fn a_bounded_wait_sleeps_on_the_clock_and_sends_when_the_budget_frees_within_it() {
    let clock = ManualClock::new();
    let sim = start_on(fast_config(), &clock).await;
    let client = Arc::new(client_limited_to(&sim, &clock, 1));
    client.list_machines(&MachineQuery::default(), Wait::Queue).await.unwrap();

    let next = tokio::spawn({
        let client = client.clone();
        async move { client.list_machines(&MachineQuery::default(), Wait::AtMost(Duration::from_secs(90))).await }
    });
    let wake = sleeper(&clock).await;
    assert!(wake - seen(&sim, RouteKind::ListMachines, 0) >= Duration::from_secs(60), "it waits out the minute");
    assert_eq!(sim.count(RouteKind::ListMachines), 1, "not sent before the budget frees");
    clock.advance_to(wake);
    assert_eq!(next.await.unwrap().unwrap().len(), 5);
    assert_eq!(sim.count(RouteKind::ListMachines), 2);
    assert_eq!(sim.max_calls_in_rolling_minute(RouteKind::ListMachines), 1);
}

#[tokio::test]
async fn after_a_429_a_wait_shorter_than_retry_after_is_busy() {
    let clock = ManualClock::new();
    let sim = start_on(fast_config(), &clock).await;
    let client = client_on(&sim, &clock);
    sim.inject(RouteKind::ListActions, FaultAction::too_many_requests(30), 1);
    let q = ActionQuery { action_type: Some(ActionType::Isolate), ..Default::default() };
    let err = client.query_actions(&q, Wait::Queue).await.unwrap_err();
    assert_eq!(err.status(), Some(429));

    let err = client.query_actions(&q, Wait::AtMost(Duration::from_secs(10))).await.unwrap_err();
    let MdeError::Busy { api: Api::ListActions, retry_after } = err else { panic!("expected Busy, got {err:?}") };
    assert!(retry_after > Duration::from_secs(20) && retry_after <= Duration::from_secs(30), "{retry_after:?}");
    assert_eq!(err.retry_after(), Some(retry_after));
    assert_eq!(sim.count(RouteKind::ListActions), 1);
    assert_eq!(sim.throttled(), 1);

    clock.advance(Duration::from_secs(30));
    let found = client.query_actions(&q, Wait::AtMost(Duration::ZERO)).await.unwrap();
    assert_eq!(found.len(), 5, "the seeded isolations, once Retry-After ran out");
}
