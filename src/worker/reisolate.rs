//! Isolating a device again when its break-glass release was not ratified in time.

use super::Worker;
use crate::audit::AuditEvent;
use crate::clock::{rfc3339_ms, to_ms};
use crate::db::{self, worker::Claim};
use crate::mde::{ActionType, Api, IsolationType};

#[tracing::instrument(name = "reisolate", skip_all, fields(release_id = %c.id))]
pub(super) async fn run(w: &Worker, c: Claim) -> anyhow::Result<()> {
    let ratify_by = {
        let mut conn = w.state.db.reader().await?;
        db::releases::get(&mut conn, c.id).await?.and_then(|r| r.break_glass).map(|b| b.ratify_by).unwrap_or_default()
    };
    let marker = c.id.marker();
    let text = format!(
        "{marker} Isolated again by dualkey: break-glass release not ratified by a second person before {}",
        rfc3339_ms(ratify_by)
    );
    for api in [Api::ListActions, Api::Isolate] {
        if !super::dispatch::hold_until_budget(w, &c, api).await? {
            return Ok(());
        }
    }
    // Exactly once: an earlier attempt may have isolated it already.
    let existing = w.mde.list_actions(c.machine_id.as_str(), &ActionType::Isolate).await.map(|actions| {
        actions.into_iter().find(|a| a.requestor_comment.as_deref().is_some_and(|t| t.starts_with(&marker)))
    });
    let result = match existing {
        Ok(Some(action)) => Ok(action),
        Ok(None) => w.mde.isolate(c.machine_id.as_str(), &text, IsolationType::Full).await,
        Err(e) => Err(e),
    };
    let now = w.state.clock.now();
    let mut tx = w.state.db.begin().await?;
    match result {
        Ok(action) => {
            if db::worker::mark_reisolated(&mut tx, &c, &action.id, to_ms(now)).await? {
                let event = AuditEvent::BreakGlassReisolated {
                    mde_action_id: action.id.clone(),
                    ratify_by: rfc3339_ms(ratify_by),
                };
                w.audit(&mut tx, &c, &event).await?;
                tracing::warn!(mde_action_id = %action.id, "break-glass release not ratified: device isolated again");
            }
        }
        Err(e) => {
            let retry = w.config.retry.delay(1, e.retry_after(), Worker::jitter()).unwrap_or(w.config.retry.max);
            if db::worker::defer_reisolation(&mut tx, &c, to_ms(now) + retry.as_millis() as i64, to_ms(now)).await? {
                let event = AuditEvent::BreakGlassReisolationFailed {
                    error: e.to_string(),
                    http_status: e.status(),
                    mde_error_code: e.code().map(str::to_string),
                };
                w.audit(&mut tx, &c, &event).await?;
                tracing::error!(error = %e, "re-isolating an unratified break-glass release failed; will retry");
            }
        }
    }
    tx.commit().await?;
    Ok(())
}
