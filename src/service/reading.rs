//! Reading releases: who may read which, one release, lists, and the releases waiting for a
//! person's decision.

use super::expiry::expire_in_tx;
use super::releases::{caller, load};
use crate::auth::Principal;
use crate::clock::Timestamp;
use crate::db;
use crate::decide;
use crate::domain::{Release, ReleaseId};
use crate::error::ApiError;
use crate::state::AppState;

/// Readers: requesters, approvers and auditors may all see releases.
pub(crate) fn require_reader(state: &AppState, p: &Principal) -> Result<(), ApiError> {
    if is_reader(state, p) { Ok(()) } else { Err(not_a_reader(state)) }
}

fn not_a_reader(state: &AppState) -> ApiError {
    let a = &state.settings.auth;
    ApiError::forbidden(
        "missing_role",
        format!(
            "reading releases needs one of `{}`, `{}`, `{}` or a role the policy's approval slots ask for",
            a.requester_role, a.approver_role, a.auditor_role
        ),
    )
}

/// Whether `p` holds a role that reads every release: requester, approver, auditor, or a role
/// a slot of the policy in force asks for (a Tier0 owner reads what they may approve).
fn is_reader(state: &AppState, p: &Principal) -> bool {
    let a = &state.settings.auth;
    [&a.requester_role, &a.approver_role, &a.auditor_role].iter().any(|r| p.has_role(r))
        || state.policy().slot_roles().any(|r| p.has_role(r))
}

/// One release; a pending one past its expiry is marked expired first. Readers see every
/// release; anyone else only the ones they asked for (a break-glass holder with no other role).
pub(crate) async fn get(state: &AppState, p: &Principal, id: ReleaseId) -> Result<Release, ApiError> {
    let now = state.clock.now();
    let r = {
        let mut conn = state.db.reader().await?;
        db::releases::get(&mut conn, id).await?
    };
    // Exact ids: reading is not a separation-of-duties check, and a look-alike reads nothing.
    let r = match r {
        Some(r) if is_reader(state, p) || r.requested_by == p.id => r,
        // The same answer whether or not the release exists.
        _ if !is_reader(state, p) => return Err(not_a_reader(state)),
        _ => return Err(ApiError::not_found("release_not_found", format!("no release with id {id}"))),
    };
    if !r.is_past_expiry(now) {
        return Ok(r);
    }
    let mut tx = state.db.begin().await?;
    expire_in_tx(&mut tx, now, r.id, &r.machine_id, r.expires_at).await?;
    let r = load(&mut tx, id).await?;
    tx.commit().await?;
    Ok(r)
}

/// Releases newest first; pending ones past their expiry are swept first so none shows stale.
/// A caller without a reader role sees only their own requests.
pub(crate) async fn list(
    state: &AppState,
    p: &Principal,
    mut filter: db::releases::ListFilter,
) -> Result<Vec<(i64, Release)>, ApiError> {
    if !is_reader(state, p) {
        if filter.requested_by.as_ref().is_some_and(|by| by != &p.id) {
            return Err(not_a_reader(state));
        }
        filter.requested_by = Some(p.id.clone());
    }
    super::expiry::expire_due(&state.db, state.clock.now()).await?;
    let mut conn = state.db.reader().await?;
    Ok(db::releases::list(&mut conn, &filter).await?)
}

/// Releases `p` may decide now (approve, or ratify a break-glass one), newest first, at most
/// `limit`, before `before_seq` when given. Scans the undecided releases page by page, as
/// whether a slot is open for `p` is decided by `decide`, not by SQL.
pub(crate) async fn waiting_for(
    state: &AppState,
    p: &Principal,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<(i64, Release)>, ApiError> {
    const SCAN_PAGE: i64 = 200;
    require_reader(state, p)?;
    let now = state.clock.now();
    super::expiry::expire_due(&state.db, now).await?;
    let approver_role = &state.settings.auth.approver_role;
    let mut conn = state.db.reader().await?;
    let mut found = Vec::new();
    let mut cursor = before_seq;
    loop {
        let filter = db::releases::ListFilter {
            status: None,
            machine_id: None,
            requested_by: None,
            before_seq: cursor,
            awaiting_decision: true,
            limit: SCAN_PAGE,
        };
        let page = db::releases::list(&mut conn, &filter).await?;
        let exhausted = (page.len() as i64) < SCAN_PAGE;
        cursor = page.last().map(|(seq, _)| *seq);
        found.extend(page.into_iter().filter(|(_, r)| awaits_decision_by(r, p, approver_role, now)));
        if exhausted || found.len() as i64 >= limit {
            found.truncate(limit as usize);
            return Ok(found);
        }
    }
}

/// Whether `p` may decide `r` now: approve a pending release into an open slot, or ratify a
/// break-glass one. The same pure checks as the decision itself (velocity guards aside).
pub(crate) fn awaits_decision_by(r: &Release, p: &Principal, approver_role: &str, now: Timestamp) -> bool {
    match &r.break_glass {
        Some(_) => decide::ratification(r, caller(p), approver_role, now).is_ok(),
        None => decide::approval(r, caller(p), approver_role, now).is_ok(),
    }
}
