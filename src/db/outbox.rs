//! SQL for the notification outbox: messages written with the change they report, taken from
//! the head of each channel's queue, and finished once.

use crate::clock::Timestamp;
use crate::db::Conn;

table_row! {
    /// One row of `notify_outbox`.
    struct OutboxRow in "notify_outbox", columns col {
        @generated { seq: i64 }
        id: String,
        channel: String,
        event: String,
        release_id: Option<String>,
        data: String,
        created_at: Timestamp,
        status: String,
        attempts: i64,
        next_attempt_at: Timestamp,
        last_error: Option<String>,
        finished_at: Option<Timestamp>,
    }
}

/// Stores a new pending message.
pub(crate) async fn insert(conn: &mut Conn, row: OutboxRow) -> Result<(), sqlx::Error> {
    row.insert(conn).await
}

/// The oldest pending message of `channel`: the only one that may be sent next.
pub(crate) async fn head(conn: &mut Conn, channel: &str) -> Result<Option<OutboxRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM {} WHERE channel = $1 AND status = 'pending' ORDER BY seq LIMIT 1",
        OutboxRow::COLUMNS,
        OutboxRow::TABLE
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(channel).fetch_optional(conn).await
}

/// Records a failed attempt of pending message `id`: tried again at `next`.
pub(crate) async fn retry_later(conn: &mut Conn, id: &str, error: &str, next: Timestamp) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE notify_outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(error)
    .bind(next)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How a message ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    Delivered,
    Dead,
}

/// Ends pending message `id` (`attempted`: the end came from an attempt, which counts).
pub(crate) async fn finish(
    conn: &mut Conn,
    id: &str,
    how: Finish,
    attempted: bool,
    error: Option<&str>,
    at: Timestamp,
) -> Result<bool, sqlx::Error> {
    let status = match how {
        Finish::Delivered => "delivered",
        Finish::Dead => "dead",
    };
    let done = sqlx::query(
        "UPDATE notify_outbox SET status = $2, attempts = attempts + $3, last_error = coalesce($4, last_error),
                finished_at = $5
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(status)
    .bind(i64::from(attempted))
    .bind(error)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Messages newest first, with `status` when given, before `before_seq` when given.
pub(crate) async fn list(
    conn: &mut Conn,
    status: Option<&str>,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<OutboxRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM {} WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR seq < $2) ORDER BY seq DESC LIMIT $3",
        OutboxRow::COLUMNS,
        OutboxRow::TABLE
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(status).bind(before_seq).bind(limit).fetch_all(conn).await
}
