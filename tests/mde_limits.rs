//! The client's own rate limiting and Retry-After handling, seen from the simulator, and the
//! simulator's shutdown. The client and the simulator share a test clock: a waiting call is
//! seen asleep on it, until a deadline the test checks, and the test moves the clock to wake it.

mod mde_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dualkey::clock::ManualClock;
use dualkey::mde::simulator::{FaultAction, RouteKind, SimulatorHandle};
use dualkey::mde::{MdeClient, RateLimiter, RollingWindow};
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
