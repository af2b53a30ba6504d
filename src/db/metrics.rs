//! What `/metrics` reads from the database at scrape time: the same on every replica of it.

use crate::clock::Timestamp;
use crate::db::Conn;
use crate::domain::ReleaseId;
use crate::mde::Limits;

/// The figures of one scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Gauges {
    /// Releases by stored status.
    pub releases: Vec<(String, i64)>,
    /// Releases approved and not yet sent to MDE (`approved`, `dispatching`).
    pub queue_depth: i64,
    /// The oldest `approved_at` among them.
    pub oldest_approved_at: Option<Timestamp>,
    /// The last audit entry's sequence number (0 for an empty trail).
    pub audit_head_seq: i64,
}

/// Reads [`Gauges`], each from an index.
pub(crate) async fn gauges(conn: &mut Conn) -> Result<Gauges, sqlx::Error> {
    let releases: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM releases GROUP BY status").fetch_all(&mut *conn).await?;
    let (queue_depth, oldest_approved_at): (i64, Option<Timestamp>) =
        sqlx::query_as("SELECT COUNT(*), MIN(approved_at) FROM releases WHERE status IN ('approved', 'dispatching')")
            .fetch_one(&mut *conn)
            .await?;
    let audit_head_seq: Option<i64> =
        sqlx::query_scalar("SELECT MAX(seq) FROM audit_log").fetch_one(&mut *conn).await?;
    Ok(Gauges { releases, queue_depth, oldest_approved_at, audit_head_seq: audit_head_seq.unwrap_or(0) })
}

/// Calls the shared budget (`mde_calls`) counts at `now` in the rolling minute and the rolling
/// hour of `limits`, every replica's, by API name; an API without calls is absent. One statement.
pub(crate) async fn budget_used(
    conn: &mut Conn,
    limits: Limits,
    now: Timestamp,
) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT api, SUM(CASE WHEN at > $1 THEN 1 ELSE 0 END), COUNT(*)
         FROM mde_calls WHERE at > $2 GROUP BY api",
    )
    .bind(now.minus(limits.minute()))
    .bind(now.minus(limits.hour()))
    .fetch_all(conn)
    .await
}

/// When the release `id` was approved, if it was.
pub(crate) async fn approved_at(conn: &mut Conn, id: ReleaseId) -> Result<Option<Timestamp>, sqlx::Error> {
    sqlx::query_scalar("SELECT approved_at FROM releases WHERE id = $1").bind(id.to_string()).fetch_one(conn).await
}
