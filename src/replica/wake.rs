//! On PostgreSQL every write transaction ends with `pg_notify('dualkey', what)` (see
//! `db::Tx::commit`), delivered to every listening connection when it commits. This task listens
//! and wakes this replica's tasks as a commit of its own would: the worker (new approvals,
//! released leases), the notification delivery (outbox rows) and the audit forwarders (new
//! entries). A lost connection is reopened; the tasks' own polls cover the gap.

use crate::db::Backend;
use crate::state::AppState;
use sqlx::postgres::PgListener;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The channel the commits notify.
pub(crate) const CHANNEL: &str = "dualkey";

/// Listens until `stop`, on PostgreSQL only (a single SQLite process wakes its own tasks).
pub(crate) async fn run(state: AppState, stop: CancellationToken) {
    if state.db.backend() != Backend::Postgres {
        return;
    }
    loop {
        match listen(&state, &stop).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "listening for other replicas' commits failed; retrying in 1s");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

async fn listen(state: &AppState, stop: &CancellationToken) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect(state.db.url().expose()).await?;
    listener.listen(CHANNEL).await?;
    tracing::debug!("listening for other replicas' commits");
    // Whatever was committed while this connection was not listening is picked up now.
    wake_all(state, None);
    loop {
        let n = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            n = listener.try_recv() => n?,
        };
        match n {
            Some(n) => wake_all(state, Some(n.payload())),
            // The connection was lost and is being reopened: notifications in between are lost.
            None => wake_all(state, None),
        }
    }
}

/// Wakes the tasks a commit of `what` concerns (`None`: all of them).
fn wake_all(state: &AppState, what: Option<&str>) {
    state.approved.notify_one();
    if matches!(what, None | Some("outbox"))
        && let Some(r) = state.db.routing()
    {
        r.committed();
    }
    if matches!(what, None | Some("outbox" | "audit")) {
        state.db.others_appended();
    }
}
