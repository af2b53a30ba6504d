//! Following a dispatched release's MDE action to its end.

use super::Worker;
use crate::audit::AuditEvent;
use crate::clock::to_ms;
use crate::db::{self, worker::Claim};
use crate::mde::ActionStatus;

#[tracing::instrument(name = "poll", skip_all, fields(release_id = %c.id, mde_action_id = ?c.mde_action_id))]
pub(super) async fn run(w: &Worker, c: Claim) -> anyhow::Result<()> {
    let Some(action_id) = c.mde_action_id.clone() else {
        anyhow::bail!("dispatched release {} has no MDE action id", c.id);
    };
    let result = w.mde.get_action(&action_id).await;
    let now = w.state.clock.now();
    let now_ms = to_ms(now);
    let mut tx = w.state.db.begin().await?;
    match result {
        Ok(action) => {
            let status = action.status.clone().unwrap_or(ActionStatus::Other("unknown".into()));
            let name = status.as_str().to_string();
            let owned = if status.is_final() {
                let succeeded = status == ActionStatus::Succeeded;
                let error = (!succeeded).then(|| format!("MDE action {action_id} ended {name}"));
                db::worker::mark_finished(&mut tx, &c, succeeded, Some(&name), error.as_deref(), now_ms).await?
            } else {
                let next = now_ms + w.config.poll_interval.as_millis() as i64;
                db::worker::mark_polled(&mut tx, &c, Some(&name), None, now_ms, next).await?
            };
            if !owned {
                return Ok(());
            }
            if c.mde_action_status.as_deref() != Some(name.as_str()) {
                let event = AuditEvent::MdeActionProgressed {
                    mde_action_id: action_id.clone(),
                    from: c.mde_action_status.clone(),
                    to: name.clone(),
                };
                w.audit(&mut tx, &c, &event).await?;
            }
            if status == ActionStatus::Succeeded {
                w.audit(&mut tx, &c, &AuditEvent::ReleaseSucceeded { mde_action_id: action_id }).await?;
            } else if status.is_final() {
                let event = AuditEvent::ReleaseFailed {
                    reason: format!("MDE action ended {name}"),
                    mde_action_id: Some(action_id),
                    mde_action_status: Some(name),
                };
                w.audit(&mut tx, &c, &event).await?;
            }
        }
        Err(e) => {
            // Reads right after creation can 404 briefly, and 429/5xx pass: poll again later.
            let wait = e.retry_after().unwrap_or_default().max(w.config.poll_interval);
            let error = e.to_string();
            tracing::warn!(error = %error, "polling the MDE action failed; will poll again");
            if !db::worker::mark_polled(&mut tx, &c, None, Some(&error), now_ms, now_ms + wait.as_millis() as i64)
                .await?
            {
                return Ok(());
            }
            let event = AuditEvent::PollFailed {
                mde_action_id: action_id,
                http_status: e.status(),
                mde_error_code: e.code().map(str::to_string),
                mde_error_message: e.message().map(str::to_string),
                error,
            };
            w.audit(&mut tx, &c, &event).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}
