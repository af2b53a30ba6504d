//! Shared set-up for the MDE client and simulator tests: a simulator on a loopback port 0 and
//! a client pointed at it, on the system clock or sharing a test's [`ManualClock`].
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use dualkey::clock::{ManualClock, Monotonic, SystemClock};
use dualkey::mde::simulator::{DEV_CLIENT_ID, DEV_CLIENT_SECRET, Simulator, SimulatorConfig, SimulatorHandle};
use dualkey::mde::{ActionStatus, MachineAction, MdeClient, MdeClientConfig, MdeCredential};
use dualkey::secret::Secret;

/// Seeded (isolated) machines of the default configuration.
pub const MACHINE: &str = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07";
pub const OTHER_MACHINE: &str = "7b1f4967d9728e5aa3c06a9e617a22a4a5a17378";
pub const UNKNOWN_MACHINE: &str = "ffffffffffffffffffffffffffffffffffffffff";

pub const CERT: &str = include_str!("../fixtures/mde/client.crt");
pub const KEY: &str = include_str!("../fixtures/mde/client.key");
pub const OTHER_KEY: &str = include_str!("../fixtures/mde/other.key");

pub const SCOPE: &str = "https://api.securitycenter.microsoft.com/.default";

/// The default configuration with actions that finish within a fraction of a second.
pub fn fast_config() -> SimulatorConfig {
    SimulatorConfig {
        pending_for: Duration::from_millis(50),
        in_progress_for: Duration::from_millis(50),
        ..SimulatorConfig::default()
    }
}

/// A simulator on the system clock.
pub async fn start(config: SimulatorConfig) -> SimulatorHandle {
    Simulator::start(config).await.expect("the simulator binds")
}

/// A simulator on `clock`.
pub async fn start_on(config: SimulatorConfig, clock: &ManualClock) -> SimulatorHandle {
    Simulator::start_with_clock(config, Arc::new(clock.clone())).await.expect("the simulator binds")
}

/// A client with the dev client secret and MDE's real limits, on the system clock.
pub fn client_for(sim: &SimulatorHandle) -> MdeClient {
    client_with(sim, MdeCredential::ClientSecret(Secret::new(DEV_CLIENT_SECRET)))
}

pub fn client_with(sim: &SimulatorHandle, credential: MdeCredential) -> MdeClient {
    MdeClient::new(config_for(sim, credential), Arc::new(SystemClock)).expect("the client builds")
}

/// A client with the dev client secret and MDE's real limits, on `clock`.
pub fn client_on(sim: &SimulatorHandle, clock: &ManualClock) -> MdeClient {
    let config = config_for(sim, MdeCredential::ClientSecret(Secret::new(DEV_CLIENT_SECRET)));
    MdeClient::new(config, Arc::new(clock.clone())).expect("the client builds")
}

pub fn config_for(sim: &SimulatorHandle, credential: MdeCredential) -> MdeClientConfig {
    MdeClientConfig {
        api_base: sim.base_url().to_owned(),
        token_url: sim.token_url(),
        scope: SCOPE.to_owned(),
        client_id: DEV_CLIENT_ID.to_owned(),
        credential,
        rate_per_minute: 100,
        rate_per_hour: 1500,
        request_timeout: Duration::from_secs(10),
    }
}

/// Polls the action until it is final, moving the clock the client and simulator share 20 ms
/// between polls; panics after many rounds (the bound only keeps a broken simulator from
/// hanging the suite).
pub async fn poll_until_final(client: &MdeClient, clock: &ManualClock, id: &str) -> MachineAction {
    for _ in 0..500 {
        let action = client.get_action(id).await.expect("the action can be read");
        if action.status.as_ref().is_some_and(ActionStatus::is_final) {
            return action;
        }
        clock.advance(Duration::from_millis(20));
    }
    panic!("action {id} never reached a final status");
}

/// Waits until a task sleeps on `clock` and returns the earliest deadline; panics if none does
/// within seconds (the bound only keeps a caller that never sleeps on the clock from hanging).
pub async fn sleeper(clock: &ManualClock) -> Monotonic {
    tokio::time::timeout(Duration::from_secs(10), clock.wait_for_sleeper()).await.expect("a caller sleeps on the clock")
}
