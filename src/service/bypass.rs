//! Acknowledging a bypass: an auditor says they have seen it; it stops counting in readiness.

use crate::audit::{self, Actor, AuditEvent, Subject};
use crate::auth::Principal;
use crate::db::{self, fleet::BypassRow};
use crate::domain::Comment;
use crate::error::ApiError;
use crate::state::AppState;

fn require_auditor(state: &AppState, p: &Principal) -> Result<(), ApiError> {
    let role = &state.settings.auth.auditor_role;
    if p.has_role(role) { Ok(()) } else { Err(ApiError::missing_role(role)) }
}

/// Every bypass found, newest first (auditor role).
pub(crate) async fn list(state: &AppState, p: &Principal, limit: u32) -> Result<Vec<BypassRow>, ApiError> {
    require_auditor(state, p)?;
    let mut conn = state.db.reader().await?;
    Ok(db::fleet::bypasses(&mut conn, limit).await?)
}

/// Marks bypass `id` acknowledged by `p`, with its audit entry, in one transaction. A bypass
/// acknowledged already is 409 `already_acknowledged`.
pub(crate) async fn acknowledge(
    state: &AppState,
    p: &Principal,
    id: &str,
    comment: Option<Comment>,
) -> Result<BypassRow, ApiError> {
    require_auditor(state, p)?;
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let Some(b) = db::fleet::bypass(&mut tx, id).await? else {
        return Err(ApiError::not_found("bypass_not_found", format!("no bypass with id {id}")));
    };
    if !db::fleet::acknowledge(&mut tx, id, &p.id, now).await? {
        return Err(ApiError::conflict("already_acknowledged", "this bypass was acknowledged already"));
    }
    let event = AuditEvent::BypassAcknowledged {
        bypass_id: b.id.clone(),
        mde_action_id: b.mde_action_id.clone(),
        comment: comment.as_ref().map(|c| c.as_str().to_string()),
    };
    let subject = Subject { release_id: None, machine_id: Some(&b.machine_id) };
    audit::record(&mut tx, now, Actor::Principal(&p.id), subject, &event).await?;
    let b = db::fleet::bypass(&mut tx, id).await?.unwrap_or(b);
    tx.commit().await?;
    Ok(b)
}
