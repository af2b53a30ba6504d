//! The client's own rate limiting and Retry-After handling, seen from the simulator, and the
//! simulator's shutdown. Waiting calls are checked by what the simulator received, never by
//! how long anything took.

mod mde_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dualkey::mde::simulator::{DEV_CLIENT_SECRET, FaultAction, RouteKind};
use dualkey::mde::{MdeClient, MdeCredential, RateLimiter, RollingWindow};
use dualkey::secret::Secret;
use mde_support::*;

fn client_limited_to(sim: &dualkey::mde::simulator::SimulatorHandle, per_minute: u32) -> MdeClient {
    let mut config = config_for(sim, MdeCredential::ClientSecret(Secret::new(DEV_CLIENT_SECRET)));
    config.rate_per_minute = per_minute;
    MdeClient::new(config).unwrap()
}

#[tokio::test]
async fn the_client_waits_for_its_window_instead_of_sending_over_the_limit() {
    let sim = start(fast_config()).await;
    let client = client_limited_to(&sim, 2);
    client.get_machine(MACHINE).await.unwrap();
    client.get_machine(MACHINE).await.unwrap();

    // The third call may only go a minute after the first; it must still be waiting.
    let third = tokio::time::timeout(Duration::from_millis(300), client.get_machine(MACHINE)).await;
    assert!(third.is_err(), "the third call was sent within the minute");
    assert_eq!(sim.count(RouteKind::GetMachine), 2);
    // Another API's budget is untouched.
    client.get_action(&uuid::Uuid::new_v4().to_string()).await.unwrap_err();
    assert_eq!(sim.count(RouteKind::GetAction), 1);
}

#[tokio::test]
async fn after_a_429_the_client_holds_that_api_for_retry_after() {
    let sim = start(fast_config()).await;
    let client = client_for(&sim);
    sim.inject(RouteKind::GetMachine, FaultAction::too_many_requests(30), 1);
    let err = client.get_machine(MACHINE).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));

    let next = tokio::time::timeout(Duration::from_millis(300), client.get_machine(MACHINE)).await;
    assert!(next.is_err(), "the call was sent before Retry-After ran out");
    assert_eq!(sim.count(RouteKind::GetMachine), 1);
}

// The default test runtime is single-threaded: a spawned task runs when the test yields, so
// each waiter is queued before the next one is spawned.
#[tokio::test]
async fn waiting_callers_are_served_in_arrival_order() {
    let limiter = Arc::new(RateLimiter::new(RollingWindow::new(100, 1000)));
    limiter.block_for(Duration::from_millis(100));
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
