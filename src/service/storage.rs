//! Finding out when storage takes writes again. While writes fail with a storage error, a probe
//! write runs every [`PROBE_INTERVAL`] on the clock; the first one that commits turns writes
//! (and `/readyz`) back on, even when nothing else writes.

use crate::db::Writes;
use crate::state::AppState;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often storage is probed while writes fail.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// Probes storage while writes fail, until `stop` is cancelled; idle while writes succeed.
pub(crate) async fn run_probe(state: AppState, stop: CancellationToken) {
    let mut writes = state.db.write_health().subscribe();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            failing = writes.wait_for(|w| *w == Writes::Failing) => if failing.is_err() { return },
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            () = state.clock.sleep(PROBE_INTERVAL) => {}
        }
        // A failure is already logged once for the outage; a success logs the recovery.
        if let Err(e) = state.db.probe_write(state.clock.now()).await {
            tracing::debug!(error = %e, "storage probe: writes still fail");
        }
    }
}
