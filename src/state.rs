//! The state every handler and background task shares.

use crate::auth::Verifier;
use crate::clock::SharedClock;
use crate::db::Db;
use crate::mde::MdeClient;
use crate::rules::Policy;
use crate::settings::Settings;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::Notify;

/// Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub clock: SharedClock,
    /// The validated release policy in force; replaced whole on a good reload (SIGHUP).
    pub policy_cell: Arc<RwLock<Arc<Policy>>>,
    pub verifier: Arc<Verifier>,
    /// The one MDE client of this process (one rate budget per API), when `[mde]` is configured.
    pub mde: Option<Arc<MdeClient>>,
    /// The view of MDE's devices and actions every reader shares, when `[mde]` is configured.
    pub fleet: Option<Arc<crate::fleet::Fleet>>,
    /// Signalled when a release becomes approved, so the worker wakes at once.
    pub approved: Arc<Notify>,
    /// The log budget for refused tokens (anyone can cause them).
    pub refusal_log: Arc<crate::logsafe::LogLimiter>,
    /// Whether this process's release worker runs (set by `startup`, read by `/readyz`).
    pub worker: WorkerSwitch,
    /// The console's OpenID Connect relying party, when `[oidc]` is configured.
    pub(crate) oidc: Option<Arc<crate::auth::oidc::Oidc>>,
    /// Sends the notification outbox, when `[notify]` routes anything.
    pub(crate) delivery: Option<Arc<crate::notify::delivery::Delivery>>,
    /// Sends off-host copies of the audit trail, when `[[audit.forward]]` names any.
    pub(crate) forwarders: Option<Arc<crate::forward::Forwarders>>,
    /// The periodic jobs this replica runs, and whether it leads each (one replica runs each).
    pub(crate) jobs: Arc<crate::replica::jobs::Jobs>,
    /// When each background task last succeeded and failed (`/readyz`).
    pub(crate) tasks: Arc<crate::tasks::Tasks>,
    /// The address the daemon listens on (the console's origin unless `console.public_url`).
    pub local_addr: std::net::SocketAddr,
}

/// Whether the release worker of this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerRun {
    /// Not configured here (`mde.worker_enabled = false`).
    Off,
    /// Configured, and its task is running.
    Running,
    /// Configured, but its task is not running (not started yet, stopped, or panicked).
    Stopped,
}

/// A shared [`WorkerRun`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WorkerSwitch(Arc<AtomicU8>);

impl WorkerSwitch {
    pub fn new(run: WorkerRun) -> Self {
        Self(Arc::new(AtomicU8::new(run as u8)))
    }

    pub fn get(&self) -> WorkerRun {
        match self.0.load(Ordering::SeqCst) {
            x if x == WorkerRun::Off as u8 => WorkerRun::Off,
            x if x == WorkerRun::Running as u8 => WorkerRun::Running,
            _ => WorkerRun::Stopped,
        }
    }

    pub fn set(&self, run: WorkerRun) {
        self.0.store(run as u8, Ordering::SeqCst);
    }
}

impl AppState {
    /// The policy in force now. Callers keep the returned `Arc` for the whole decision, so a
    /// reload in the middle never mixes two policies.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy_cell.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `policy` in force.
    pub fn set_policy(&self, policy: Policy) {
        *self.policy_cell.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(policy);
    }
}
