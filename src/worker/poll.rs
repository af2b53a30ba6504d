//! Following a dispatched release's MDE action to its end.

use super::Worker;
use crate::audit::AuditEvent;
use crate::db::{self, worker::Claim};
use crate::mde::ActionStatus;
use crate::service::transition::Change;

/// Reads the action of the release `c` holds by itself (`GET /api/machineactions/{id}`): for an
/// action the scan's bulk list did not show.
#[tracing::instrument(name = "poll", skip_all, fields(release_id = %c.id, mde_action_id = ?c.mde_action_id))]
pub(super) async fn run(w: &Worker, c: Claim) -> anyhow::Result<()> {
    let Some(action_id) = c.mde_action_id.clone() else {
        anyhow::bail!("dispatched release {} has no MDE action id", c.id);
    };
    let result = w.mde.get_action(&action_id).await;
    apply(w, c, result).await
}

/// Records what MDE said of the action of the release `c` holds: its progress, its end, or
/// why it could not be read; then releases the claim.
pub(super) async fn apply(
    w: &Worker,
    c: Claim,
    result: Result<crate::mde::MachineAction, crate::mde::MdeError>,
) -> anyhow::Result<()> {
    let Some(action_id) = c.mde_action_id.clone() else {
        anyhow::bail!("dispatched release {} has no MDE action id", c.id);
    };
    let now = w.state.clock.now();
    let mut tx = w.state.db.begin().await?;
    match result {
        Ok(action) => {
            let status = action.status.clone().unwrap_or(ActionStatus::Other("unknown".into()));
            let name = status.as_str().to_string();
            let progressed =
                (c.mde_action_status.as_deref() != Some(name.as_str())).then(|| AuditEvent::MdeActionProgressed {
                    mde_action_id: action_id.clone(),
                    from: c.mde_action_status.clone(),
                    to: name.clone(),
                });
            if status.is_final() {
                // The progress entry comes first; the move's own entry closes the release.
                if let Some(event) = &progressed {
                    w.audit(&mut tx, &c, event).await?;
                }
                let error = format!("MDE action {action_id} ended {name}");
                let (change, event) = if status == ActionStatus::Succeeded {
                    (
                        Change::Succeed { action_status: &name },
                        AuditEvent::ReleaseSucceeded { mde_action_id: action_id },
                    )
                } else {
                    let event = AuditEvent::ReleaseFailed {
                        reason: format!("MDE action ended {name}"),
                        mde_action_id: Some(action_id),
                        mde_action_status: Some(name.clone()),
                    };
                    (Change::Fail { action_status: Some(&name), error: &error }, event)
                };
                if !w.moved(&mut tx, &c, change, &event, now).await? {
                    return Ok(());
                }
            } else {
                let next = now.plus(w.config.poll_interval);
                if !db::worker::polled(&mut tx, &c, Some(&name), None, now, next).await? {
                    return Ok(());
                }
                if let Some(event) = &progressed {
                    w.audit(&mut tx, &c, event).await?;
                }
            }
        }
        Err(e) => {
            // Reads right after creation can 404 briefly, and 429/5xx pass: poll again later.
            let wait = e.retry_after().unwrap_or_default().max(w.config.poll_interval);
            let error = e.to_string();
            tracing::warn!(error = %error, "polling the MDE action failed; will poll again");
            if !db::worker::polled(&mut tx, &c, None, Some(&error), now, now.plus(wait)).await? {
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
