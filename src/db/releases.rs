//! SQL for releases and approvals.

use crate::domain::{Approval, BreakGlass, MachineId, Release, ReleaseId, ReleasePolicy, ReleaseStatus};
use sqlx::{FromRow, SqliteConnection};

/// A new release as the request handler built it.
#[derive(Debug, Clone)]
pub struct NewRelease<'a> {
    pub id: ReleaseId,
    pub machine_id: &'a MachineId,
    pub comment: &'a str,
    pub ticket: Option<&'a str>,
    pub requested_by: &'a str,
    pub requested_at: i64,
    pub expires_at: i64,
    pub approvals_required: u32,
    pub policy: &'a ReleasePolicy,
    /// `Some(ratify_by)`: a break-glass release, approved at once, to be ratified by then.
    pub break_glass: Option<i64>,
}

/// Why an insert was refused by the database's own rules.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    #[error("machine already has an open release")]
    AlreadyOpen,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

const COLUMNS: &str = "seq, id, machine_id, comment, ticket, status, requested_by, requested_at, expires_at,
    approvals_required, approved_at, decided_by, decided_at, decision_comment, mde_action_id,
    mde_action_status, attempts, last_error, policy_rule, policy_hash, policy_applied, device, isolated_by, break_glass, ratify_by, ratified_by,
    ratified_at, reisolation_action_id, reisolated_at";

#[derive(FromRow)]
struct Row {
    seq: i64,
    id: String,
    machine_id: String,
    comment: String,
    ticket: Option<String>,
    status: String,
    requested_by: String,
    requested_at: i64,
    expires_at: i64,
    approvals_required: i64,
    approved_at: Option<i64>,
    decided_by: Option<String>,
    decided_at: Option<i64>,
    decision_comment: Option<String>,
    mde_action_id: Option<String>,
    mde_action_status: Option<String>,
    attempts: i64,
    last_error: Option<String>,
    #[allow(dead_code)]
    policy_rule: Option<String>,
    policy_hash: Option<String>,
    policy_applied: Option<String>,
    device: Option<String>,
    isolated_by: Option<String>,
    break_glass: i64,
    ratify_by: Option<i64>,
    ratified_by: Option<String>,
    ratified_at: Option<i64>,
    reisolation_action_id: Option<String>,
    reisolated_at: Option<i64>,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("stored {what} is invalid: {e}").into())
}

impl Row {
    fn policy(&self) -> Result<Option<ReleasePolicy>, sqlx::Error> {
        let (Some(hash), Some(applied), Some(device)) = (&self.policy_hash, &self.policy_applied, &self.device) else {
            return Ok(None);
        };
        Ok(Some(ReleasePolicy {
            rule: serde_json::from_str(applied).map_err(|e| corrupt("policy rule", e))?,
            hash: hash.clone(),
            device: serde_json::from_str(device).map_err(|e| corrupt("device snapshot", e))?,
            isolated_by: self.isolated_by.clone(),
        }))
    }

    fn into_release(self, approvals: Vec<Approval>) -> Result<(i64, Release), sqlx::Error> {
        let policy = self.policy()?;
        let break_glass = (self.break_glass == 1).then(|| BreakGlass {
            ratify_by: self.ratify_by.unwrap_or(0),
            ratified_by: self.ratified_by.clone(),
            ratified_at: self.ratified_at,
            reisolation_action_id: self.reisolation_action_id.clone(),
            reisolated_at: self.reisolated_at,
        });
        Ok((
            self.seq,
            Release {
                id: ReleaseId::parse(&self.id).map_err(|e| corrupt("release id", e))?,
                machine_id: MachineId::parse(&self.machine_id).map_err(|e| corrupt("machine id", e))?,
                comment: self.comment,
                ticket: self.ticket,
                status: ReleaseStatus::parse(&self.status).map_err(|e| corrupt("status", e))?,
                requested_by: self.requested_by,
                requested_at: self.requested_at,
                expires_at: self.expires_at,
                approvals_required: u32::try_from(self.approvals_required)
                    .map_err(|e| corrupt("approvals_required", e))?,
                approved_at: self.approved_at,
                decided_by: self.decided_by,
                decided_at: self.decided_at,
                decision_comment: self.decision_comment,
                mde_action_id: self.mde_action_id,
                mde_action_status: self.mde_action_status,
                attempts: u32::try_from(self.attempts).map_err(|e| corrupt("attempts", e))?,
                last_error: self.last_error,
                approvals,
                policy,
                break_glass,
            },
        ))
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Inserts a pending release. The partial unique index turns a race between two requests for
/// the same machine into [`InsertError::AlreadyOpen`] for the loser.
pub async fn insert(conn: &mut SqliteConnection, r: &NewRelease<'_>) -> Result<(), InsertError> {
    sqlx::query(
        "INSERT INTO releases (id, machine_id, comment, ticket, status, requested_by, requested_at,
                               expires_at, approvals_required, updated_at, policy_rule, policy_hash,
                               policy_applied, device, isolated_by, break_glass, ratify_by, approved_at, next_attempt_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(r.id.to_string())
    .bind(r.machine_id.as_str())
    .bind(r.comment)
    .bind(r.ticket)
    .bind(if r.break_glass.is_some() { "approved" } else { "pending" })
    .bind(r.requested_by)
    .bind(r.requested_at)
    .bind(r.expires_at)
    .bind(r.approvals_required as i64)
    .bind(r.requested_at)
    .bind(&r.policy.rule.name)
    .bind(&r.policy.hash)
    .bind(serde_json::to_string(&r.policy.rule).map_err(|e| sqlx::Error::Encode(Box::new(e)))?)
    .bind(serde_json::to_string(&r.policy.device).map_err(|e| sqlx::Error::Encode(Box::new(e)))?)
    .bind(&r.policy.isolated_by)
    .bind(r.break_glass.is_some() as i64)
    .bind(r.break_glass)
    .bind(r.break_glass.map(|_| r.requested_at))
    .bind(r.break_glass.map(|_| r.requested_at))
    .execute(conn)
    .await
    .map_err(|e| if is_unique_violation(&e) { InsertError::AlreadyOpen } else { InsertError::Db(e) })?;
    Ok(())
}

/// The open release (pending, approved, dispatching or dispatched) for a machine, if any.
pub async fn open_for_machine(
    conn: &mut SqliteConnection,
    machine: &MachineId,
) -> Result<Option<ReleaseId>, sqlx::Error> {
    let id: Option<String> = sqlx::query_scalar(
        "SELECT id FROM releases
         WHERE machine_id = ? AND status IN ('pending', 'approved', 'dispatching', 'dispatched')",
    )
    .bind(machine.as_str())
    .fetch_optional(conn)
    .await?;
    id.map(|s| ReleaseId::parse(&s).map_err(|e| corrupt("release id", e))).transpose()
}

fn approval(approver: String, comment: Option<String>, at: i64, roles: String) -> Result<Approval, sqlx::Error> {
    let roles = serde_json::from_str(&roles).map_err(|e| corrupt("approver roles", e))?;
    Ok(Approval { approver, comment, at, roles })
}

async fn approvals_of(conn: &mut SqliteConnection, id: &str) -> Result<Vec<Approval>, sqlx::Error> {
    let rows: Vec<(String, Option<String>, i64, String)> =
        sqlx::query_as("SELECT approver, comment, at, roles FROM approvals WHERE release_id = ? ORDER BY at, approver")
            .bind(id)
            .fetch_all(conn)
            .await?;
    rows.into_iter().map(|(approver, comment, at, roles)| approval(approver, comment, at, roles)).collect()
}

/// One release with its approvals.
pub async fn get(conn: &mut SqliteConnection, id: ReleaseId) -> Result<Option<Release>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM releases WHERE id = ?");
    let row: Option<Row> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id.to_string()).fetch_optional(&mut *conn).await?;
    match row {
        None => Ok(None),
        Some(row) => {
            let approvals = approvals_of(conn, &row.id).await?;
            Ok(Some(row.into_release(approvals)?.1))
        }
    }
}

/// Filters for [`list`]. `before_seq` is the cursor: only releases older than it.
#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    pub status: Option<ReleaseStatus>,
    pub machine_id: Option<MachineId>,
    pub requested_by: Option<String>,
    pub before_seq: Option<i64>,
    pub limit: i64,
}

/// Releases newest first, with the `seq` of each for the next cursor.
pub async fn list(conn: &mut SqliteConnection, f: &ListFilter) -> Result<Vec<(i64, Release)>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM releases
         WHERE (?1 IS NULL OR status = ?1)
           AND (?2 IS NULL OR machine_id = ?2)
           AND (?3 IS NULL OR requested_by = ?3)
           AND (?4 IS NULL OR seq < ?4)
         ORDER BY seq DESC
         LIMIT ?5"
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(f.status.map(|s| s.as_str()))
        .bind(f.machine_id.as_ref().map(|m| m.as_str().to_string()))
        .bind(f.requested_by.clone())
        .bind(f.before_seq)
        .bind(f.limit)
        .fetch_all(&mut *conn)
        .await?;
    // One query for the approvals of the whole page, not one per release.
    let ids = serde_json::to_string(&rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>())
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let approvals: Vec<(String, String, Option<String>, i64, String)> = sqlx::query_as(
        "SELECT release_id, approver, comment, at, roles FROM approvals
         WHERE release_id IN (SELECT value FROM json_each(?))
         ORDER BY at, approver",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_release: std::collections::HashMap<String, Vec<Approval>> = std::collections::HashMap::new();
    for (release_id, approver, comment, at, roles) in approvals {
        by_release.entry(release_id).or_default().push(approval(approver, comment, at, roles)?);
    }
    rows.into_iter()
        .map(|row| {
            let approvals = by_release.remove(&row.id).unwrap_or_default();
            row.into_release(approvals)
        })
        .collect()
}

/// Records an approval. The primary key refuses a second approval by the same person and a
/// trigger refuses the requester and non-pending releases.
pub async fn insert_approval(
    conn: &mut SqliteConnection,
    id: ReleaseId,
    approver: &str,
    roles: &[String],
    comment: Option<&str>,
    at: i64,
) -> Result<(), sqlx::Error> {
    let roles = serde_json::to_string(roles).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query("INSERT INTO approvals (release_id, approver, comment, at, roles) VALUES (?, ?, ?, ?, ?)")
        .bind(id.to_string())
        .bind(approver)
        .bind(comment)
        .bind(at)
        .bind(roles)
        .execute(conn)
        .await?;
    Ok(())
}

/// Moves a pending release to `approved`. Returns false if it was not pending.
pub async fn mark_approved(conn: &mut SqliteConnection, id: ReleaseId, at: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE releases SET status = 'approved', approved_at = ?, next_attempt_at = ?, updated_at = ?
         WHERE id = ? AND status = 'pending'",
    )
    .bind(at)
    .bind(at)
    .bind(at)
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Moves a pending release to a final decided state (`rejected` or `cancelled`).
/// Returns false if it was not pending.
pub async fn mark_decided(
    conn: &mut SqliteConnection,
    id: ReleaseId,
    status: ReleaseStatus,
    by: &str,
    comment: Option<&str>,
    at: i64,
) -> Result<bool, sqlx::Error> {
    debug_assert!(matches!(status, ReleaseStatus::Rejected | ReleaseStatus::Cancelled));
    let r = sqlx::query(
        "UPDATE releases SET status = ?, decided_by = ?, decided_at = ?, decision_comment = ?, updated_at = ?
         WHERE id = ? AND status = 'pending'",
    )
    .bind(status.as_str())
    .bind(by)
    .bind(at)
    .bind(comment)
    .bind(at)
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Moves a pending release past its expiry to `expired`. Returns false if it was not pending
/// or not yet due.
pub async fn mark_expired(conn: &mut SqliteConnection, id: ReleaseId, now: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE releases SET status = 'expired', updated_at = ?
         WHERE id = ? AND status = 'pending' AND expires_at <= ?",
    )
    .bind(now)
    .bind(id.to_string())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Pending releases whose expiry has passed, oldest first, at most `limit`.
pub async fn due_for_expiry(
    conn: &mut SqliteConnection,
    now: i64,
    limit: i64,
) -> Result<Vec<(ReleaseId, MachineId, i64)>, sqlx::Error> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT id, machine_id, expires_at FROM releases
         WHERE status = 'pending' AND expires_at <= ?
         ORDER BY expires_at
         LIMIT ?",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(id, m, e)| {
            Ok((
                ReleaseId::parse(&id).map_err(|e| corrupt("release id", e))?,
                MachineId::parse(&m).map_err(|e| corrupt("machine id", e))?,
                e,
            ))
        })
        .collect()
}

/// How many releases `who` requested since `since` (velocity guard).
pub async fn requests_since(conn: &mut SqliteConnection, who: &str, since: i64) -> Result<u32, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM releases WHERE requested_by = ? AND requested_at >= ?")
        .bind(who)
        .bind(since)
        .fetch_one(conn)
        .await?;
    Ok(n.max(0) as u32)
}

/// How many approvals `who` gave since `since` (velocity guard).
pub async fn approvals_since(conn: &mut SqliteConnection, who: &str, since: i64) -> Result<u32, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM approvals WHERE approver = ? AND at >= ?")
        .bind(who)
        .bind(since)
        .fetch_one(conn)
        .await?;
    Ok(n.max(0) as u32)
}

/// Records the ratification of a break-glass release. False if it was already ratified.
pub async fn mark_ratified(conn: &mut SqliteConnection, id: ReleaseId, by: &str, at: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE releases SET ratified_by = ?, ratified_at = ?, updated_at = ?
         WHERE id = ? AND break_glass = 1 AND ratified_at IS NULL AND reisolation_action_id IS NULL",
    )
    .bind(by)
    .bind(at)
    .bind(at)
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}
