//! Isolating a device again when its break-glass release was not ratified in time. A failed
//! attempt backs off like a send (`RetryPolicy`, by the number of failed attempts), and after
//! the worker's `max_attempts` dualkey gives up; each failure, and giving up, is audited.

use super::Worker;
use super::heartbeat::Heartbeat;
use crate::audit::AuditEvent;
use crate::clock::Timestamp;
use crate::db::{self, worker::Claim};
use crate::mde::{ActionType, Api, IsolationType, MdeError, Share};
use crate::service::transition::Change;

#[tracing::instrument(name = "reisolate", skip_all, fields(release_id = %c.id, attempt = c.reisolation_attempts + 1))]
pub(super) async fn run(w: &Worker, c: Claim) -> anyhow::Result<()> {
    let ratify_by = {
        let mut conn = w.state.db.reader().await?;
        db::releases::get(&mut conn, c.id).await?.and_then(|r| r.break_glass).map(|b| b.ratify_by)
    }
    .unwrap_or(Timestamp::EPOCH);
    let marker = c.id.marker();
    let text = format!(
        "{marker} Isolated again by dualkey: break-glass release not ratified by a second person before {ratify_by}"
    );
    for api in [Api::ListActions, Api::Isolate] {
        if !super::dispatch::hold_until_budget(w, &c, api, Share::Full).await? {
            return Ok(());
        }
    }
    // Exactly once: an earlier attempt may have isolated it already.
    let existing = w.mde.list_actions(c.machine_id.as_str(), &ActionType::Isolate).await.map(|actions| {
        actions.into_iter().find(|a| a.requestor_comment.as_deref().is_some_and(|t| t.starts_with(&marker)))
    });
    let result = match existing {
        Ok(Some(action)) => Ok(action),
        Ok(None) => {
            if !Heartbeat::of(w).confirm(&c).await? {
                return Ok(());
            }
            w.mde.isolate(c.machine_id.as_str(), &text, IsolationType::Full).await
        }
        Err(e) => Err(e),
    };
    let now = w.state.clock.now();
    let mut tx = w.state.db.begin().await?;
    match result {
        Ok(action) => {
            let event = AuditEvent::BreakGlassReisolated { mde_action_id: action.id.clone(), ratify_by };
            if !w.moved(&mut tx, &c, Change::Reisolate { action_id: &action.id }, &event, now).await? {
                return Ok(());
            }
            tracing::warn!(mde_action_id = %action.id, "break-glass release not ratified: device isolated again");
        }
        Err(e) => {
            if !failed_attempt(w, &mut tx, &c, &e, now).await? {
                tracing::warn!("lost the claim before recording the failed re-isolation");
                return Ok(());
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Records a failed attempt: try again after a backoff, or give up after the last attempt.
/// False when the claim was lost.
async fn failed_attempt(
    w: &Worker,
    tx: &mut crate::db::Tx,
    c: &Claim,
    e: &MdeError,
    now: Timestamp,
) -> anyhow::Result<bool> {
    let attempt = c.reisolation_attempts + 1;
    let next = w.config.retry.delay(attempt, e.retry_after(), Worker::jitter()).map(|d| now.plus(d));
    let owned = match next {
        Some(due) => db::worker::defer_reisolation(tx, c, attempt, due, now).await?,
        None => db::worker::abandon_reisolation(tx, c, attempt, now).await?,
    };
    if !owned {
        return Ok(false);
    }
    let error = e.to_string();
    let event = AuditEvent::BreakGlassReisolationFailed {
        error: error.clone(),
        http_status: e.status(),
        mde_error_code: e.code().map(str::to_string),
        attempt,
        next_attempt_at: next,
    };
    w.audit(tx, c, &event).await?;
    let Some(due) = next else {
        let event = AuditEvent::BreakGlassReisolationAbandoned { attempts: attempt, last_error: error.clone() };
        w.audit(tx, c, &event).await?;
        tracing::error!(%error, attempts = attempt, "gave up re-isolating the device; isolate it by hand");
        return Ok(true);
    };
    tracing::error!(%error, attempt, next_attempt_at = %due, "re-isolating the device failed; will retry");
    Ok(true)
}
