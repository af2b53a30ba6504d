//! SQL for reading releases, and the `releases` row.

use super::approvals;
use crate::clock::Timestamp;
use crate::db::Conn;
use crate::domain::{Approval, BatchId, BreakGlass, DecidedUnder, MachineId, Release, ReleaseId, ReleaseStatus};

table_row! {
    /// One row of `releases`, every column.
    struct ReleaseRow in "releases", columns col {
        @generated { seq: i64 }
        id: String,
        machine_id: String,
        comment: String,
        ticket: Option<String>,
        status: String,
        requested_by: String,
        requested_at: Timestamp,
        expires_at: Timestamp,
        approvals_required: i64,
        approved_at: Option<Timestamp>,
        decided_by: Option<String>,
        decided_at: Option<Timestamp>,
        decision_comment: Option<String>,
        mde_action_id: Option<String>,
        mde_action_status: Option<String>,
        attempts: i64,
        last_error: Option<String>,
        lease_owner: Option<String>,
        lease_expires_at: Option<Timestamp>,
        next_attempt_at: Option<Timestamp>,
        updated_at: Timestamp,
        dispatched_at: Option<Timestamp>,
        finished_at: Option<Timestamp>,
        policy_rule: Option<String>,
        policy_hash: Option<String>,
        policy_applied: Option<String>,
        device: Option<String>,
        isolated_by: Option<String>,
        break_glass: i64,
        ratify_by: Option<Timestamp>,
        ratified_by: Option<String>,
        ratified_at: Option<Timestamp>,
        reisolation_action_id: Option<String>,
        reisolated_at: Option<Timestamp>,
        reisolation_attempts: i64,
        reisolation_due_at: Option<Timestamp>,
        reisolation_abandoned_at: Option<Timestamp>,
        batch_id: Option<String>,
    }
}

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("stored {what} is invalid: {e}").into())
}

pub(crate) fn encode_json(v: &impl serde::Serialize) -> Result<String, sqlx::Error> {
    serde_json::to_string(v).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

impl ReleaseRow {
    pub(crate) fn release_id(&self) -> Result<ReleaseId, sqlx::Error> {
        ReleaseId::parse(&self.id).map_err(|e| corrupt("release id", e))
    }

    pub(crate) fn machine(&self) -> Result<MachineId, sqlx::Error> {
        MachineId::parse(&self.machine_id).map_err(|e| corrupt("machine id", e))
    }

    pub(crate) fn release_status(&self) -> Result<ReleaseStatus, sqlx::Error> {
        ReleaseStatus::parse(&self.status).map_err(|e| corrupt("status", e))
    }

    fn decided_under(&self) -> Result<Option<DecidedUnder>, sqlx::Error> {
        let (Some(hash), Some(applied), Some(device)) = (&self.policy_hash, &self.policy_applied, &self.device) else {
            return Ok(None);
        };
        Ok(Some(DecidedUnder {
            rule: serde_json::from_str(applied).map_err(|e| corrupt("policy rule", e))?,
            hash: hash.clone(),
            device: serde_json::from_str(device).map_err(|e| corrupt("device snapshot", e))?,
            isolated_by: self.isolated_by.clone(),
        }))
    }

    fn into_release(self, approvals: Vec<Approval>) -> Result<(i64, Release), sqlx::Error> {
        let count = |what: &str, n: i64| u32::try_from(n).map_err(|e| corrupt(what, e));
        let break_glass = match self.break_glass {
            1 => Some(BreakGlass {
                ratify_by: self.ratify_by.unwrap_or(Timestamp::EPOCH),
                ratified_by: self.ratified_by.clone(),
                ratified_at: self.ratified_at,
                reisolation_action_id: self.reisolation_action_id.clone(),
                reisolated_at: self.reisolated_at,
                reisolation_attempts: count("reisolation_attempts", self.reisolation_attempts)?,
                reisolation_abandoned_at: self.reisolation_abandoned_at,
            }),
            _ => None,
        };
        let release = Release {
            id: self.release_id()?,
            machine_id: self.machine()?,
            status: self.release_status()?,
            decided_under: self.decided_under()?,
            approvals_required: count("approvals_required", self.approvals_required)?,
            attempts: count("attempts", self.attempts)?,
            comment: self.comment,
            ticket: self.ticket,
            requested_by: self.requested_by,
            requested_at: self.requested_at,
            expires_at: self.expires_at,
            updated_at: self.updated_at,
            approved_at: self.approved_at,
            decided_by: self.decided_by,
            decided_at: self.decided_at,
            decision_comment: self.decision_comment,
            mde_action_id: self.mde_action_id,
            mde_action_status: self.mde_action_status,
            last_error: self.last_error,
            approvals,
            break_glass,
            batch_id: self.batch_id.as_deref().map(BatchId::parse).transpose().map_err(|e| corrupt("batch id", e))?,
        };
        Ok((self.seq, release))
    }
}

/// The release's row, every column.
pub(crate) async fn row(conn: &mut Conn, id: ReleaseId) -> Result<Option<ReleaseRow>, sqlx::Error> {
    let sql = format!("SELECT {} FROM {} WHERE id = $1", ReleaseRow::COLUMNS, ReleaseRow::TABLE);
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id.to_string()).fetch_optional(conn).await
}

/// The open release (pending, approved, dispatching or dispatched) for a machine, if any.
pub(crate) async fn open_for_machine(conn: &mut Conn, machine: &MachineId) -> Result<Option<ReleaseId>, sqlx::Error> {
    let id: Option<String> = sqlx::query_scalar(
        "SELECT id FROM releases
         WHERE machine_id = $1 AND status IN ('pending', 'approved', 'dispatching', 'dispatched')",
    )
    .bind(machine.as_str())
    .fetch_optional(conn)
    .await?;
    id.map(|s| ReleaseId::parse(&s).map_err(|e| corrupt("release id", e))).transpose()
}

/// One release with its approvals.
pub(crate) async fn get(conn: &mut Conn, id: ReleaseId) -> Result<Option<Release>, sqlx::Error> {
    match row(&mut *conn, id).await? {
        None => Ok(None),
        Some(row) => {
            let approvals = approvals::of(conn, id).await?;
            Ok(Some(row.into_release(approvals)?.1))
        }
    }
}

/// Filters for [`list`]. `before_seq` is the cursor: only releases older than it.
#[derive(Debug, Default, Clone)]
pub(crate) struct ListFilter {
    pub status: Option<ReleaseStatus>,
    pub machine_id: Option<MachineId>,
    pub requested_by: Option<String>,
    pub before_seq: Option<i64>,
    /// Only releases a person could still decide: pending ones, and break-glass ones not yet
    /// ratified (nor re-isolated).
    pub awaiting_decision: bool,
    pub limit: i64,
}

/// Releases newest first, with the `seq` of each for the next cursor.
pub(crate) async fn list(conn: &mut Conn, f: &ListFilter) -> Result<Vec<(i64, Release)>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM {}
         WHERE ($1 IS NULL OR status = $1)
           AND ($2 IS NULL OR machine_id = $2)
           AND ($3 IS NULL OR requested_by = $3)
           AND ($4 IS NULL OR seq < $4)
           AND ($6 = 0 OR status = 'pending'
                OR (break_glass = 1 AND ratified_at IS NULL AND reisolation_action_id IS NULL))
         ORDER BY seq DESC
         LIMIT $5",
        ReleaseRow::COLUMNS,
        ReleaseRow::TABLE
    );
    let rows: Vec<ReleaseRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(f.status.map(|s| s.as_str()))
        .bind(f.machine_id.as_ref().map(|m| m.as_str().to_string()))
        .bind(f.requested_by.clone())
        .bind(f.before_seq)
        .bind(f.limit)
        .bind(i64::from(f.awaiting_decision))
        .fetch_all(&mut *conn)
        .await?;
    let mut by_release = approvals::of_page(conn, rows.iter().map(|r| r.id.as_str())).await?;
    rows.into_iter()
        .map(|row| {
            let approvals = by_release.remove(&row.id).unwrap_or_default();
            row.into_release(approvals)
        })
        .collect()
}

/// The releases of batch `id`, in the order they were stored.
pub(crate) async fn of_batch(conn: &mut Conn, id: BatchId) -> Result<Vec<Release>, sqlx::Error> {
    let sql = format!("SELECT {} FROM {} WHERE batch_id = $1 ORDER BY seq", ReleaseRow::COLUMNS, ReleaseRow::TABLE);
    let rows: Vec<ReleaseRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id.to_string()).fetch_all(&mut *conn).await?;
    let mut by_release = approvals::of_page(conn, rows.iter().map(|r| r.id.as_str())).await?;
    rows.into_iter()
        .map(|row| {
            let approvals = by_release.remove(&row.id).unwrap_or_default();
            row.into_release(approvals).map(|(_, r)| r)
        })
        .collect()
}

/// A pending release due for expiry: its id, machine and expiry.
pub(crate) type DueForExpiry = (ReleaseId, MachineId, Timestamp);

/// Pending releases whose expiry has passed, oldest first, at most `limit`.
pub(crate) async fn due_for_expiry(
    conn: &mut Conn,
    now: Timestamp,
    limit: i64,
) -> Result<Vec<DueForExpiry>, sqlx::Error> {
    let rows: Vec<(String, String, Timestamp)> = sqlx::query_as(
        "SELECT id, machine_id, expires_at FROM releases
         WHERE status = 'pending' AND expires_at <= $1
         ORDER BY expires_at
         LIMIT $2",
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

/// Records the ratification of a break-glass release. False if it was already ratified or
/// re-isolated.
pub(crate) async fn ratify(conn: &mut Conn, id: ReleaseId, by: &str, at: Timestamp) -> Result<bool, sqlx::Error> {
    use super::fenced::{Guard, Sets, update};
    let sets = Sets::new().set(col::ratified_by, by.to_string()).set(col::ratified_at, at);
    let guards = [Guard::BreakGlass, Guard::Null(col::ratified_at), Guard::Null(col::reisolation_action_id)];
    update(conn, id, sets, &guards, at).await
}
