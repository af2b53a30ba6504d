//! SQL of `job_leases`: which replica runs each periodic job, until when.

use crate::clock::Timestamp;
use crate::db::Conn;

/// Takes or renews `job` for `holder` until `until`, if nobody else holds an unexpired lease
/// at `now`. True when `holder` holds it afterwards.
pub(crate) async fn take(
    conn: &mut Conn,
    job: &str,
    holder: &str,
    now: Timestamp,
    until: Timestamp,
) -> Result<bool, sqlx::Error> {
    let held: Option<String> = sqlx::query_scalar(
        "INSERT INTO job_leases (job, holder, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
         WHERE job_leases.holder = excluded.holder OR job_leases.expires_at <= $4
         RETURNING holder",
    )
    .bind(job)
    .bind(holder)
    .bind(until)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(held.is_some())
}

/// Who holds `job`, if anyone.
pub(crate) async fn holder(conn: &mut Conn, job: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT holder FROM job_leases WHERE job = $1").bind(job).fetch_optional(conn).await
}

/// Moves `job` from `from` (known dead) to `to` until `until`. True when it moved.
pub(crate) async fn take_over(
    conn: &mut Conn,
    job: &str,
    from: &str,
    to: &str,
    until: Timestamp,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE job_leases SET holder = $1, expires_at = $2 WHERE job = $3 AND holder = $4")
        .bind(to)
        .bind(until)
        .bind(job)
        .bind(from)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives up every lease `holder` has (a clean shutdown), so another replica takes over at once.
pub(crate) async fn resign(conn: &mut Conn, holder: &str) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM job_leases WHERE holder = $1").bind(holder).execute(conn).await?.rows_affected())
}
