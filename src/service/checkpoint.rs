//! Writing checkpoints on a timer and at shutdown (the count-based ones are written by
//! `audit::record` as the entry that reaches the count is appended).

use crate::audit::checkpoint;
use crate::audit::signing::LogSigner;
use crate::state::AppState;
use tokio_util::sync::CancellationToken;

/// Writes a checkpoint now if entries other than checkpoint records were added since the last
/// one. Returns the size it signed, if it wrote one.
pub(crate) async fn checkpoint_now(state: &AppState, log: &LogSigner) -> Result<Option<u64>, sqlx::Error> {
    let mut tx = state.db.begin().await?;
    let written = checkpoint::write(&mut tx, state.clock.now(), log).await?;
    tx.commit().await?;
    Ok(written)
}

/// Every `[audit] checkpoint_interval` on the state's clock, until `stop`: a checkpoint when
/// entries were added since the last. Nothing when the log is unsigned.
pub(crate) async fn run_checkpointer(state: AppState, stop: CancellationToken) {
    let Some(log) = state.db.log() else { return };
    let interval = state.settings.audit.checkpoint_interval.get();
    state.tasks.started("checkpoints");
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            () = state.clock.sleep(interval) => {}
        }
        let written = checkpoint_now(&state, &log).await;
        state.tasks.ended("checkpoints", &written, state.clock.now());
        match written {
            Ok(Some(size)) => tracing::debug!(size, "checkpoint written"),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "writing a checkpoint failed; will retry"),
        }
    }
}

/// The checkpoint written as the daemon stops, so the last entries are signed.
pub(crate) async fn at_shutdown(state: &AppState) {
    let Some(log) = state.db.log() else { return };
    match checkpoint_now(state, &log).await {
        Ok(Some(size)) => tracing::info!(size, "checkpoint written at shutdown"),
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "writing the shutdown checkpoint failed"),
    }
}
