//! Expiring pending releases past their `request_ttl`: on access and from a background sweeper.

use super::transition::{self, At, Change, TransitionError};
use crate::audit::{Actor, AuditEvent};
use crate::clock::Timestamp;
use crate::db::{self, Db};
use crate::domain::{MachineId, ReleaseId, ReleaseStatus};
use tokio_util::sync::CancellationToken;

const SWEEP_BATCH: i64 = 100;

/// Marks `id` expired and records it, inside the caller's transaction. Returns false if the
/// release was no longer pending or not yet due.
pub(crate) async fn expire_in_tx(
    tx: &mut crate::db::Tx,
    now: Timestamp,
    id: ReleaseId,
    machine_id: &MachineId,
    expires_at: Timestamp,
) -> Result<bool, TransitionError> {
    let at = At { id, machine_id, status: ReleaseStatus::Pending, claim: None };
    let event = AuditEvent::ReleaseExpired { expires_at };
    match transition::apply(tx, &at, Change::Expire, Actor::System, &event, now).await {
        Ok(_) => Ok(true),
        Err(e) if e.is_lost() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Expires every pending release past its expiry, in batches; each batch is one transaction.
pub(crate) async fn expire_due(db: &Db, now: Timestamp) -> Result<usize, TransitionError> {
    let mut total = 0;
    loop {
        let due = {
            let mut conn = db.reader().await?;
            db::releases::due_for_expiry(&mut conn, now, SWEEP_BATCH).await?
        };
        if due.is_empty() {
            return Ok(total);
        }
        let mut tx = db.begin().await?;
        for (id, machine, expires_at) in &due {
            if expire_in_tx(&mut tx, now, *id, machine, *expires_at).await? {
                total += 1;
            }
        }
        tx.commit().await?;
        if (due.len() as i64) < SWEEP_BATCH {
            return Ok(total);
        }
    }
}

/// Runs [`expire_due`] at once and then every `sweep_interval` of the policy in force (read
/// each round on the state's clock, so a reload that changes it applies) until `stop` is
/// cancelled.
pub(crate) async fn run_sweeper(state: crate::state::AppState, stop: CancellationToken) {
    state.tasks.started("expiry");
    loop {
        let swept = expire_due(&state.db, state.clock.now()).await;
        state.tasks.ended("expiry", &swept, state.clock.now());
        match swept {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "expired pending releases past their request_ttl"),
            Err(e) => tracing::error!(error = %e, "expiry sweep failed; will retry"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            () = state.clock.sleep(state.policy().sweep_interval()) => {}
        }
    }
}
