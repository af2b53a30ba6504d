//! A faithful fake of the MDE API and its Entra token endpoint, served over real HTTP, with
//! the routes, bodies, status codes, limits and lifecycle of MDE_API.md, plus fault injection
//! and inspection for tests.

mod config;
mod faults;
mod filter;
mod idp;
mod portal;
mod routes;
mod server;
mod state;
mod token;
mod wire;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{
    DEV_CLIENT_ID, DEV_CLIENT_SECRET, DEV_TENANT_ID, DuplicateBehavior, NotIsolatedBehavior, SeedMachine,
    SimulatorConfig, default_seed, fleet,
};
pub use faults::{Fault, FaultAction, RouteKind, SeenRequest};
pub use idp::{DEV_API_AUDIENCE, DEV_API_SCOPE, DEV_APP_CLIENT_ID, DevIdpConfig, DevUser, IdTokenFault, dev_users};

use crate::clock::{SharedClock, SystemClock};
use crate::mde::types::{ActionType, MachineAction};
use state::Shared;
use wire::WireAction;

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    /// Binds 127.0.0.1 on a free port and serves in the background until the handle is
    /// dropped or shut down. The port is bound when this returns. Runs on the system clock.
    pub async fn start(config: SimulatorConfig) -> std::io::Result<SimulatorHandle> {
        Self::start_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Like [`start`](Self::start), with action lifecycles, token lifetimes, rate windows and
    /// injected delays measured on `clock` (a test shares its clock with the daemon, so moving
    /// it moves both).
    pub async fn start_with_clock(config: SimulatorConfig, clock: SharedClock) -> std::io::Result<SimulatorHandle> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let shared = shared_for(config, &listener, clock)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = server::app(shared.clone());
        let task = tokio::spawn(server::serve(listener, app, async {
            let _ = stopped.await;
        }));
        Ok(SimulatorHandle { shared, stop: Some(stop), task: Some(task) })
    }
}

/// Serves a simulator on `listener` until Ctrl-C (for `dualkey simulator`).
pub async fn run(config: SimulatorConfig, listener: TcpListener) -> std::io::Result<()> {
    run_until(config, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}

/// Serves a simulator on `listener` until `shutdown` completes, on the system clock.
pub async fn run_until(
    config: SimulatorConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let shared = shared_for(config, &listener, Arc::new(SystemClock))?;
    // A person is about to sign in: make the key now rather than during their first sign-in.
    shared.idp_key();
    tracing::info!(
        base_url = %shared.base_url,
        token_url = %shared.token_url(),
        issuer = %shared.idp_issuer(),
        "MDE simulator listening"
    );
    server::serve(listener, server::app(shared), shutdown).await;
    Ok(())
}

fn shared_for(config: SimulatorConfig, listener: &TcpListener, clock: SharedClock) -> std::io::Result<Arc<Shared>> {
    let base_url = format!("http://{}", listener.local_addr()?);
    Ok(Arc::new(Shared::new(config, base_url, clock)))
}

/// A running simulator: its URLs, fault injection and what it has seen. Dropping it stops
/// the server.
pub struct SimulatorHandle {
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl SimulatorHandle {
    /// `http://127.0.0.1:{port}`: the `api_base` for the client.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// `{base_url}/{tenant}/oauth2/v2.0/token`: the `token_url` for the client.
    pub fn token_url(&self) -> String {
        self.shared.token_url()
    }

    /// A client configuration pointed at this simulator (see
    /// [`SimulatorConfig::client_config`]); `None` if it accepts no client secret.
    pub fn client_config(&self) -> Option<crate::mde::MdeClientConfig> {
        self.shared.config.client_config(self.base_url())
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &SimulatorConfig {
        &self.shared.config
    }

    /// Applies `action` to the next `times` requests of `kind`, after earlier faults for it.
    pub fn inject(&self, kind: RouteKind, action: FaultAction, times: u32) {
        self.shared.lock().faults.push_back(Fault { kind, action, times });
    }

    /// Makes every token issued so far expired; the API answers 401 to them from now on.
    pub fn expire_all_tokens(&self) {
        let now = self.shared.monotonic();
        for token in self.shared.lock().tokens.values_mut() {
            token.expires_at = now;
        }
    }

    /// Every access token issued to an MDE client so far (tests look for them where they must
    /// never appear, such as the daemon's log).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.lock().tokens.keys().cloned().collect()
    }

    /// Every request seen, in arrival order, with the status answered.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared.lock().requests.clone()
    }

    /// How many requests of `kind` arrived.
    pub fn count(&self, kind: RouteKind) -> usize {
        self.shared.lock().requests.iter().filter(|r| r.kind == kind).count()
    }

    /// How many requests of each kind arrived (kinds never seen are absent).
    pub fn calls_by_kind(&self) -> BTreeMap<RouteKind, usize> {
        let mut counts = BTreeMap::new();
        for r in &self.shared.lock().requests {
            *counts.entry(r.kind).or_insert(0) += 1;
        }
        counts
    }

    /// How many requests were answered 429, by the simulator's own limit or an injected fault.
    pub fn throttled(&self) -> usize {
        self.shared.lock().requests.iter().filter(|r| r.status == Some(429)).count()
    }

    /// The machine's actions (seeded ones included) as the API would show them now, oldest
    /// first.
    pub fn actions_for(&self, machine_id: &str) -> Vec<MachineAction> {
        let now = self.shared.now();
        let state = self.shared.lock();
        state
            .actions
            .iter()
            .filter(|a| a.machine_id == machine_id)
            .map(|a| to_client(self.shared.render(a, now, false)))
            .collect()
    }

    /// Creates an action of `kind` on the machine (by id or DNS name) as `requestor` did in
    /// the portal: whatever runs on the machine already, counted against no API budget and
    /// absent from [`requests`](Self::requests). `None` for an unknown machine. Over HTTP,
    /// without a token: `POST {base_url}/_simulator/machines/{id}/unisolate` (or `/isolate`)
    /// with `{"requestor", "comment"}`, both optional.
    pub fn portal_action(
        &self,
        machine_id: &str,
        kind: ActionType,
        requestor: &str,
        comment: &str,
    ) -> Option<MachineAction> {
        self.shared.portal_action(machine_id, kind, requestor, comment).map(to_client)
    }

    /// Adds machines while running, each isolated one with a Succeeded Isolate a day old, as
    /// seeded machines get. [`config`](Self::config) still lists only the seeded ones.
    pub fn add_machines(&self, machines: Vec<SeedMachine>) {
        let now = self.shared.now();
        self.shared.lock().add_machines(&self.shared.config, machines, now);
    }

    /// How many Unisolate actions were created for the machine.
    pub fn unisolate_count(&self, machine_id: &str) -> usize {
        let state = self.shared.lock();
        state.actions.iter().filter(|a| a.machine_id == machine_id && a.action_type == ActionType::Unisolate).count()
    }

    /// The dev identity provider's issuer, `{base_url}/{tenant}/v2.0`; its discovery document
    /// is at `{issuer}/.well-known/openid-configuration`.
    pub fn idp_issuer(&self) -> String {
        self.shared.idp_issuer()
    }

    /// The dev identity provider's JWKS, `{base_url}/{tenant}/discovery/v2.0/keys`.
    pub fn idp_jwks_url(&self) -> String {
        self.shared.idp_jwks_url()
    }

    /// The device verification page, `{base_url}/devicelogin`.
    pub fn devicelogin_url(&self) -> String {
        self.shared.devicelogin_url()
    }

    /// Breaks the next ID token the identity provider issues (by any grant) as `fault` says;
    /// the one after it is sound again. A later call replaces an unused fault.
    pub fn break_next_id_token(&self, fault: IdTokenFault) {
        self.shared.lock().idp.next_fault = Some(fault);
    }

    /// How many token requests of `grant_type` (e.g. `authorization_code`,
    /// `urn:ietf:params:oauth:grant-type:device_code`, `client_credentials`) succeeded.
    pub fn idp_grants(&self, grant_type: &str) -> usize {
        self.shared.lock().idp.grants(grant_type)
    }

    /// The most requests of `kind` received within any rolling 60 s.
    pub fn max_calls_in_rolling_minute(&self, kind: RouteKind) -> usize {
        faults::max_in_rolling_minute(&self.shared.lock().requests, kind)
    }

    /// Stops serving and waits until the server task has ended.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The simulator's JSON as the client reads it.
fn to_client(wire: WireAction) -> MachineAction {
    let json = serde_json::to_value(wire).expect("an action serializes");
    serde_json::from_value(json).expect("the client type reads the simulator's JSON")
}
