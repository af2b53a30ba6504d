//! Expiring pending releases past their `request_ttl`: on access and from a background sweeper.

use crate::audit::{self, Actor, AuditEvent, Subject};
use crate::clock::{rfc3339_ms, to_ms};
use crate::db::{self, Db};
use crate::domain::{MachineId, ReleaseId};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

const SWEEP_BATCH: i64 = 100;

/// Marks `id` expired and records it, inside the caller's transaction. Returns false if the
/// release was not pending or not yet due.
pub async fn expire_in_tx(
    tx: &mut sqlx::SqliteConnection,
    now: OffsetDateTime,
    id: ReleaseId,
    machine_id: &MachineId,
    expires_at: i64,
) -> Result<bool, sqlx::Error> {
    if !db::releases::mark_expired(tx, id, to_ms(now)).await? {
        return Ok(false);
    }
    let rid = id.to_string();
    audit::record(
        tx,
        now,
        Actor::System,
        Subject { release_id: Some(&rid), machine_id: Some(machine_id.as_str()) },
        &AuditEvent::ReleaseExpired { expires_at: rfc3339_ms(expires_at) },
    )
    .await?;
    Ok(true)
}

/// Expires every pending release past its expiry, in batches; each batch is one transaction.
pub async fn expire_due(db: &Db, now: OffsetDateTime) -> Result<usize, sqlx::Error> {
    let mut total = 0;
    loop {
        let due = {
            let mut conn = db.reader().await?;
            db::releases::due_for_expiry(&mut conn, to_ms(now), SWEEP_BATCH).await?
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
/// each round, so a reload that changes it applies) until `stop` is cancelled.
pub async fn run_sweeper(state: crate::state::AppState, stop: CancellationToken) {
    loop {
        match expire_due(&state.db, state.clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "expired pending releases past their request_ttl"),
            Err(e) => tracing::error!(error = %e, "expiry sweep failed; will retry"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(state.policy().sweep_interval()) => {}
        }
    }
}
