//! SQL for stored checkpoints (`audit_checkpoints`) and the policy documents decisions were made
//! under (`policy_documents`). Only INSERT and SELECT.

use crate::clock::Timestamp;
use crate::db::Conn;

table_row! {
    /// One row of `audit_checkpoints`: a signed tree head.
    struct CheckpointRow in "audit_checkpoints", columns checkpoint_col {
        size: i64,
        /// 32 raw bytes.
        root: Vec<u8>,
        note: String,
        key_name: String,
        created_at: Timestamp,
        recorded_seq: i64,
    }
}

pub(crate) async fn insert(conn: &mut Conn, row: CheckpointRow) -> Result<(), sqlx::Error> {
    row.insert(conn).await
}

async fn one(conn: &mut Conn, filter: &str, size: Option<i64>) -> Result<Option<CheckpointRow>, sqlx::Error> {
    let sql = format!("SELECT {} FROM {} {filter}", CheckpointRow::COLUMNS, CheckpointRow::TABLE);
    let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
    if let Some(size) = size {
        q = q.bind(size);
    }
    q.fetch_optional(conn).await
}

/// The newest stored checkpoint.
pub(crate) async fn latest(conn: &mut Conn) -> Result<Option<CheckpointRow>, sqlx::Error> {
    one(conn, "ORDER BY size DESC LIMIT 1", None).await
}

/// The stored checkpoint of exactly `size` entries.
pub(crate) async fn at_size(conn: &mut Conn, size: i64) -> Result<Option<CheckpointRow>, sqlx::Error> {
    one(conn, "WHERE size = $1", Some(size)).await
}

/// Stored checkpoints with more than `after_size` entries, oldest first, at most `limit`.
pub(crate) async fn page(conn: &mut Conn, after_size: i64, limit: i64) -> Result<Vec<CheckpointRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM {} WHERE size > $1 ORDER BY size LIMIT $2",
        CheckpointRow::COLUMNS,
        CheckpointRow::TABLE
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(after_size).bind(limit).fetch_all(conn).await
}

/// Stores the canonical policy document with this hash, unless it is stored already.
pub(crate) async fn keep_policy(
    conn: &mut Conn,
    hash: &str,
    document: &str,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO policy_documents (hash, document, recorded_at) VALUES ($1, $2, $3) ON CONFLICT (hash) DO NOTHING",
    )
    .bind(hash)
    .bind(document)
    .bind(now)
    .execute(conn)
    .await
    .map(|_| ())
}

/// The policy document with this hash, if dualkey kept it (policies in force before issue 11's
/// migration were not kept).
pub(crate) async fn policy(conn: &mut Conn, hash: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT document FROM policy_documents WHERE hash = $1").bind(hash).fetch_optional(conn).await
}
