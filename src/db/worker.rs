//! SQL for the release worker: claiming a job with a lease in one statement, and finishing it
//! with updates fenced on that claim, so a worker whose lease expired cannot overwrite the work
//! of the worker that took the job over.

use crate::domain::{MachineId, ReleaseId};
use sqlx::SqliteConnection;

/// A claimed job. `claim` is the fencing token: every later update names it.
#[derive(Debug, Clone)]
pub struct Claim {
    pub id: ReleaseId,
    pub machine_id: MachineId,
    pub claim: String,
    /// Attempts to send, including this one (dispatch jobs only).
    pub attempts: u32,
    /// Set for poll jobs: the MDE action being followed.
    pub mde_action_id: Option<String>,
    pub mde_action_status: Option<String>,
    /// The last failure recorded for this release, if any.
    pub last_error: Option<String>,
}

type ClaimRow = (String, String, String, i64, Option<String>, Option<String>, Option<String>);

fn into_claim(row: ClaimRow) -> Result<Claim, sqlx::Error> {
    let (id, machine, claim, attempts, action, action_status, last_error) = row;
    let bad = |what: &str, e: crate::domain::ParseError| sqlx::Error::Decode(format!("stored {what}: {e}").into());
    Ok(Claim {
        id: ReleaseId::parse(&id).map_err(|e| bad("release id", e))?,
        machine_id: MachineId::parse(&machine).map_err(|e| bad("machine id", e))?,
        claim,
        attempts: attempts.max(0) as u32,
        mde_action_id: action,
        mde_action_status: action_status,
        last_error,
    })
}

/// Runs one claim statement (`?1` claim token, `?2` now, `?3` lease end) and maps its row.
async fn claim_one(
    conn: &mut SqliteConnection,
    sql: &'static str,
    claim: &str,
    now: i64,
    lease_until: i64,
) -> Result<Option<Claim>, sqlx::Error> {
    let row: Option<ClaimRow> =
        sqlx::query_as(sql).bind(claim).bind(now).bind(lease_until).fetch_optional(conn).await?;
    row.map(into_claim).transpose()
}

/// Claims the oldest due release to send: an approved one whose backoff has passed, or one
/// left `dispatching` by a worker whose lease expired (it died mid-call). It becomes
/// `dispatching` with a new lease and one more attempt, in one statement.
pub async fn claim_dispatch(
    conn: &mut SqliteConnection,
    claim: &str,
    now: i64,
    lease_until: i64,
) -> Result<Option<Claim>, sqlx::Error> {
    claim_one(
        conn,
        "UPDATE releases
         SET status = 'dispatching', lease_owner = ?1, lease_expires_at = ?3, attempts = attempts + 1, updated_at = ?2
         WHERE id = (
             SELECT id FROM releases
             WHERE (status = 'approved' AND COALESCE(next_attempt_at, 0) <= ?2)
                OR (status = 'dispatching' AND lease_expires_at <= ?2)
             ORDER BY approved_at, seq
             LIMIT 1)
         RETURNING id, machine_id, lease_owner, attempts, mde_action_id, mde_action_status, last_error",
        claim,
        now,
        lease_until,
    )
    .await
}

/// Claims the dispatched release whose poll is most overdue.
pub async fn claim_poll(
    conn: &mut SqliteConnection,
    claim: &str,
    now: i64,
    lease_until: i64,
) -> Result<Option<Claim>, sqlx::Error> {
    claim_one(
        conn,
        "UPDATE releases
         SET lease_owner = ?1, lease_expires_at = ?3, updated_at = ?2
         WHERE id = (
             SELECT id FROM releases
             WHERE status = 'dispatched' AND COALESCE(next_attempt_at, 0) <= ?2
               AND (lease_expires_at IS NULL OR lease_expires_at <= ?2)
             ORDER BY next_attempt_at, seq
             LIMIT 1)
         RETURNING id, machine_id, lease_owner, attempts, mde_action_id, mde_action_status, last_error",
        claim,
        now,
        lease_until,
    )
    .await
}

/// The earliest time any job becomes due (for the worker's sleep), if any.
pub async fn next_due(conn: &mut SqliteConnection) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT MIN(t) FROM (
             SELECT COALESCE(next_attempt_at, 0) AS t FROM releases WHERE status IN ('approved', 'dispatched')
             UNION ALL
             SELECT lease_expires_at FROM releases WHERE status = 'dispatching'
             UNION ALL
             SELECT MAX(ratify_by, COALESCE(lease_expires_at, 0)) FROM releases
             WHERE break_glass = 1 AND ratified_at IS NULL AND reisolation_action_id IS NULL
               AND status IN ('dispatched', 'succeeded'))",
    )
    .fetch_one(conn)
    .await
}

/// Extends the lease, if the claim is still ours. False means another worker took the job.
pub async fn renew(conn: &mut SqliteConnection, c: &Claim, now: i64, lease_until: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE releases SET lease_expires_at = ?, updated_at = ? WHERE id = ? AND lease_owner = ? AND lease_expires_at > ?",
    )
    .bind(lease_until)
    .bind(now)
    .bind(c.id.to_string())
    .bind(&c.claim)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// MDE has the action: `dispatching` becomes `dispatched`, polled from `next_poll`.
pub async fn mark_dispatched(
    conn: &mut SqliteConnection,
    c: &Claim,
    action_id: &str,
    action_status: Option<&str>,
    now: i64,
    next_poll: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE releases
         SET status = 'dispatched', mde_action_id = ?, mde_action_status = ?, dispatched_at = ?, next_attempt_at = ?,
             last_error = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
         WHERE id = ? AND lease_owner = ? AND status = 'dispatching'",
    )
    .bind(action_id)
    .bind(action_status)
    .bind(now)
    .bind(next_poll)
    .bind(now)
    .bind(c.id.to_string())
    .bind(&c.claim)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// A send failed but may succeed later: back to `approved`, due again at `next_attempt`.
pub async fn mark_retry(
    conn: &mut SqliteConnection,
    c: &Claim,
    error: &str,
    now: i64,
    next_attempt: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE releases
         SET status = 'approved', last_error = ?, next_attempt_at = ?, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
         WHERE id = ? AND lease_owner = ? AND status = 'dispatching'",
    )
    .bind(error)
    .bind(next_attempt)
    .bind(now)
    .bind(c.id.to_string())
    .bind(&c.claim)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Final: `failed` (from dispatching or dispatched) or `succeeded` (from dispatched).
pub async fn mark_finished(
    conn: &mut SqliteConnection,
    c: &Claim,
    succeeded: bool,
    action_status: Option<&str>,
    error: Option<&str>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE releases
         SET status = ?, mde_action_status = COALESCE(?, mde_action_status), last_error = COALESCE(?, last_error),
             finished_at = ?, next_attempt_at = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
         WHERE id = ? AND lease_owner = ? AND status IN ('dispatching', 'dispatched')",
    )
    .bind(if succeeded { "succeeded" } else { "failed" })
    .bind(action_status)
    .bind(error)
    .bind(now)
    .bind(now)
    .bind(c.id.to_string())
    .bind(&c.claim)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// A poll saw the action still running (or could not read it): record what it saw, poll again
/// at `next_poll`, and release the lease.
pub async fn mark_polled(
    conn: &mut SqliteConnection,
    c: &Claim,
    action_status: Option<&str>,
    error: Option<&str>,
    now: i64,
    next_poll: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE releases
         SET mde_action_status = COALESCE(?, mde_action_status), last_error = ?, next_attempt_at = ?,
             lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
         WHERE id = ? AND lease_owner = ? AND status = 'dispatched'",
    )
    .bind(action_status)
    .bind(error)
    .bind(next_poll)
    .bind(now)
    .bind(c.id.to_string())
    .bind(&c.claim)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Who requested and who approved a release, for the comment sent to MDE.
pub async fn parties(conn: &mut SqliteConnection, id: ReleaseId) -> Result<(String, String, Vec<String>), sqlx::Error> {
    let (requester, comment): (String, String) =
        sqlx::query_as("SELECT requested_by, comment FROM releases WHERE id = ?")
            .bind(id.to_string())
            .fetch_one(&mut *conn)
            .await?;
    let approvers: Vec<String> =
        sqlx::query_scalar("SELECT approver FROM approvals WHERE release_id = ? ORDER BY at, approver")
            .bind(id.to_string())
            .fetch_all(conn)
            .await?;
    Ok((requester, comment, approvers))
}

/// The approval ran past its `approval_ttl` before the release was sent: `expired`, final.
pub async fn mark_approval_expired(
    conn: &mut SqliteConnection,
    c: &Claim,
    error: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE releases
         SET status = 'expired', last_error = ?, finished_at = ?, next_attempt_at = NULL,
             lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
         WHERE id = ? AND lease_owner = ? AND status = 'dispatching'",
    )
    .bind(error)
    .bind(now)
    .bind(now)
    .bind(c.id.to_string())
    .bind(&c.claim)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The policy in force asks for more than the release has: back to `pending` under the new
/// rule, with a fresh request lifetime, so approvers can fill the missing slots.
pub async fn reopen(
    conn: &mut SqliteConnection,
    c: &Claim,
    policy: &crate::domain::ReleasePolicy,
    approvals_required: u32,
    expires_at: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let rule = serde_json::to_string(&policy.rule).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let r = sqlx::query(
        "UPDATE releases
         SET status = 'pending', approved_at = NULL, next_attempt_at = NULL, lease_owner = NULL, lease_expires_at = NULL,
             policy_rule = ?, policy_hash = ?, policy_applied = ?, approvals_required = ?, expires_at = ?, updated_at = ?
         WHERE id = ? AND lease_owner = ? AND status = 'dispatching'",
    )
    .bind(&policy.rule.name)
    .bind(&policy.hash)
    .bind(rule)
    .bind(approvals_required as i64)
    .bind(expires_at)
    .bind(now)
    .bind(c.id.to_string())
    .bind(&c.claim)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Claims the unratified break-glass release whose ratification deadline passed longest ago
/// and whose device was (or is being) released, to isolate it again.
pub async fn claim_reisolation(
    conn: &mut SqliteConnection,
    claim: &str,
    now: i64,
    lease_until: i64,
) -> Result<Option<Claim>, sqlx::Error> {
    claim_one(
        conn,
        "UPDATE releases
         SET lease_owner = ?1, lease_expires_at = ?3, updated_at = ?2
         WHERE id = (
             SELECT id FROM releases
             WHERE break_glass = 1 AND ratified_at IS NULL AND reisolation_action_id IS NULL
               AND ratify_by <= ?2 AND status IN ('dispatched', 'succeeded')
               AND (lease_expires_at IS NULL OR lease_expires_at <= ?2)
             ORDER BY ratify_by, seq
             LIMIT 1)
         RETURNING id, machine_id, lease_owner, attempts, mde_action_id, mde_action_status, last_error",
        claim,
        now,
        lease_until,
    )
    .await
}

/// The device is isolated again; record the action and release the claim.
pub async fn mark_reisolated(
    conn: &mut SqliteConnection,
    c: &Claim,
    action_id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE releases SET reisolation_action_id = ?, reisolated_at = ?, lease_owner = NULL, lease_expires_at = NULL,
                             updated_at = ?
         WHERE id = ? AND lease_owner = ?",
    )
    .bind(action_id)
    .bind(now)
    .bind(now)
    .bind(c.id.to_string())
    .bind(&c.claim)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Re-isolation failed: release the claim but keep the job until `retry_at`.
pub async fn defer_reisolation(
    conn: &mut SqliteConnection,
    c: &Claim,
    retry_at: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE releases SET lease_owner = NULL, lease_expires_at = ?, updated_at = ? WHERE id = ? AND lease_owner = ?",
    )
    .bind(retry_at)
    .bind(now)
    .bind(c.id.to_string())
    .bind(&c.claim)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}
