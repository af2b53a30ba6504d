//! SQL for the view of MDE: the few facts kept across restarts (`fleet_state`), the bypasses
//! found, and the releases a scan of MDE's actions needs to see (those in flight, and which
//! release dispatched which action).

use crate::clock::Timestamp;
use crate::db::Conn;
use crate::domain::{ReleaseId, ReleaseStatus};

/// When this installation first looked at the tenant's Unisolates.
pub(crate) const BYPASS_SCAN_FROM: &str = "bypass_scan_from";
/// How MDE names dualkey's app in `requestor`.
pub(crate) const APP_REQUESTOR: &str = "app_requestor";

pub(crate) async fn get_state(conn: &mut Conn, key: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT value FROM fleet_state WHERE key = $1").bind(key).fetch_optional(conn).await
}

/// Sets `key` unless it is set already; answers the value in force.
pub(crate) async fn init_state(conn: &mut Conn, key: &str, value: &str) -> Result<String, sqlx::Error> {
    sqlx::query("INSERT INTO fleet_state (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
        .bind(key)
        .bind(value)
        .execute(&mut *conn)
        .await?;
    Ok(get_state(conn, key).await?.unwrap_or_else(|| value.to_string()))
}

/// A dispatched release whose MDE action the scan follows.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct InFlight {
    pub id: String,
    pub mde_action_id: Option<String>,
    pub mde_action_status: Option<String>,
}

/// Every `dispatched` release, oldest dispatch first.
pub(crate) async fn in_flight(conn: &mut Conn) -> Result<Vec<InFlight>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, mde_action_id, mde_action_status FROM releases
         WHERE status = 'dispatched' ORDER BY dispatched_at, seq",
    )
    .fetch_all(conn)
    .await
}

/// The earliest next poll of a dispatched release (when the scan is next due for them).
pub(crate) async fn next_poll(conn: &mut Conn) -> Result<Option<Timestamp>, sqlx::Error> {
    sqlx::query_scalar("SELECT MIN(COALESCE(next_attempt_at, 0)) FROM releases WHERE status = 'dispatched'")
        .fetch_one(conn)
        .await
}

/// Moves every dispatched release's next poll to `next` (a scan read them all).
pub(crate) async fn polled_all(conn: &mut Conn, next: Timestamp) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE releases SET next_attempt_at = $1 WHERE status = 'dispatched'")
        .bind(next)
        .execute(conn)
        .await
        .map(|_| ())
}

/// The release `id`'s status and the MDE action it dispatched, if it exists.
pub(crate) async fn dispatched_action(
    conn: &mut Conn,
    id: ReleaseId,
) -> Result<Option<(ReleaseStatus, Option<String>)>, sqlx::Error> {
    let row: Option<(String, Option<String>)> =
        sqlx::query_as("SELECT status, mde_action_id FROM releases WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(conn)
            .await?;
    row.map(|(status, action)| {
        let status = ReleaseStatus::parse(&status).map_err(|e| sqlx::Error::Decode(e.message.into()))?;
        Ok((status, action))
    })
    .transpose()
}

table_row! {
    /// One row of `bypasses`.
    struct BypassRow in "bypasses", columns col {
        @generated { seq: i64 }
        id: String,
        mde_action_id: String,
        machine_id: String,
        requestor: Option<String>,
        requestor_comment: Option<String>,
        action_created: Option<String>,
        action_status: Option<String>,
        detected_at: Timestamp,
        response: String,
        reisolation_action_id: Option<String>,
        reisolation_attempts: i64,
        reisolation_due_at: Option<Timestamp>,
        reisolation_finished_at: Option<Timestamp>,
        reisolation_outcome: Option<String>,
        acknowledged_at: Option<Timestamp>,
        acknowledged_by: Option<String>,
    }
}

/// True when the MDE action is recorded as a bypass already.
pub(crate) async fn is_known_bypass(conn: &mut Conn, mde_action_id: &str) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bypasses WHERE mde_action_id = $1")
        .bind(mde_action_id)
        .fetch_one(conn)
        .await?;
    Ok(n > 0)
}

/// Stores a new bypass; false when that MDE action was recorded already (by another scan).
pub(crate) async fn insert_bypass(conn: &mut Conn, row: BypassRow) -> Result<bool, sqlx::Error> {
    if is_known_bypass(conn, &row.mde_action_id).await? {
        return Ok(false);
    }
    row.insert(conn).await.map(|()| true)
}

/// Every bypass, newest first, at most `limit`.
pub(crate) async fn bypasses(conn: &mut Conn, limit: u32) -> Result<Vec<BypassRow>, sqlx::Error> {
    let sql = format!("SELECT {} FROM {} ORDER BY seq DESC LIMIT $1", BypassRow::COLUMNS, BypassRow::TABLE);
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(i64::from(limit)).fetch_all(conn).await
}

pub(crate) async fn bypass(conn: &mut Conn, id: &str) -> Result<Option<BypassRow>, sqlx::Error> {
    let sql = format!("SELECT {} FROM {} WHERE id = $1", BypassRow::COLUMNS, BypassRow::TABLE);
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await
}

/// How many bypasses nobody has acknowledged yet.
pub(crate) async fn unacknowledged(conn: &mut Conn) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM bypasses WHERE acknowledged_at IS NULL").fetch_one(conn).await
}

/// Marks a bypass acknowledged; false when it was already.
pub(crate) async fn acknowledge(conn: &mut Conn, id: &str, by: &str, now: Timestamp) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE bypasses SET acknowledged_at = $1, acknowledged_by = $2 WHERE id = $3 AND acknowledged_at IS NULL",
    )
    .bind(now)
    .bind(by)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Bypasses to be answered by isolating the device again, due at `now`.
pub(crate) async fn reisolations_due(conn: &mut Conn, now: Timestamp) -> Result<Vec<BypassRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM {} WHERE response = 'reisolate' AND reisolation_finished_at IS NULL
           AND COALESCE(reisolation_due_at, 0) <= $1 ORDER BY seq",
        BypassRow::COLUMNS,
        BypassRow::TABLE
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(now).fetch_all(conn).await
}

/// Whether any re-isolation is still to be done (the scan then stays at the poll interval).
pub(crate) async fn reisolations_open(conn: &mut Conn) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM bypasses WHERE response = 'reisolate' AND reisolation_finished_at IS NULL",
    )
    .fetch_one(conn)
    .await?;
    Ok(n > 0)
}

/// Records the latest status seen of the bypassing MDE action.
pub(crate) async fn saw_status(conn: &mut Conn, mde_action_id: &str, status: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE bypasses SET action_status = $1 WHERE mde_action_id = $2")
        .bind(status)
        .bind(mde_action_id)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Ends the re-isolation of bypass `id`: with the Isolate action that answered it, or with an
/// outcome saying why there is none. False when it had ended already.
pub(crate) async fn finish_reisolation(
    conn: &mut Conn,
    id: &str,
    action_id: Option<&str>,
    outcome: &str,
    attempts: u32,
    now: Timestamp,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE bypasses SET reisolation_action_id = $1, reisolation_outcome = $2, reisolation_attempts = $3,
                reisolation_finished_at = $4, reisolation_due_at = NULL
         WHERE id = $5 AND reisolation_finished_at IS NULL",
    )
    .bind(action_id)
    .bind(outcome)
    .bind(i64::from(attempts))
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A re-isolation attempt failed: try again from `due`.
pub(crate) async fn defer_reisolation(
    conn: &mut Conn,
    id: &str,
    attempts: u32,
    due: Timestamp,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE bypasses SET reisolation_attempts = $1, reisolation_due_at = $2
         WHERE id = $3 AND reisolation_finished_at IS NULL",
    )
    .bind(i64::from(attempts))
    .bind(due)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
