//! The state every handler and background task shares.

use crate::auth::Verifier;
use crate::clock::SharedClock;
use crate::db::Db;
use crate::mde::MdeClient;
use crate::rules::Policy;
use crate::settings::Settings;
use std::sync::Arc;
use tokio::sync::Notify;

/// Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub clock: SharedClock,
    /// The validated release policy in force.
    pub policy: Arc<Policy>,
    pub verifier: Arc<Verifier>,
    /// The one MDE client of this process (one rate budget per API), when `[mde]` is configured.
    pub mde: Option<Arc<MdeClient>>,
    /// Signalled when a release becomes approved, so the worker wakes at once.
    pub approved: Arc<Notify>,
}
