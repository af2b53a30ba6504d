//! The state every handler and background task shares.

use crate::auth::Verifier;
use crate::clock::SharedClock;
use crate::db::Db;
use crate::settings::Settings;
use std::sync::Arc;
use tokio::sync::Notify;

/// Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub clock: SharedClock,
    pub verifier: Arc<Verifier>,
    /// Signalled when a release becomes approved, so the worker wakes at once.
    pub approved: Arc<Notify>,
}
