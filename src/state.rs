//! The state every handler and background task shares.

use crate::auth::Verifier;
use crate::clock::SharedClock;
use crate::db::Db;
use crate::mde::MdeClient;
use crate::rules::Policy;
use crate::settings::Settings;
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
    /// Signalled when a release becomes approved, so the worker wakes at once.
    pub approved: Arc<Notify>,
    /// The log budget for refused tokens (anyone can cause them).
    pub refusal_log: Arc<crate::logsafe::LogLimiter>,
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
