//! SQL for the audit log. Only INSERT and SELECT: the table refuses UPDATE and DELETE.

use crate::audit::AuditEntry;
use crate::clock::Timestamp;
use crate::db::Conn;

table_row! {
    /// One row of `audit_log`, every column.
    struct AuditRow in "audit_log", columns col {
        seq: i64,
        at: Timestamp,
        actor: String,
        action: String,
        release_id: Option<String>,
        machine_id: Option<String>,
        details: String,
        release_prev_seq: Option<i64>,
        prev_hash: String,
        hash: String,
    }
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        AuditEntry {
            seq: r.seq,
            at: r.at,
            actor: r.actor,
            action: r.action,
            release_id: r.release_id,
            machine_id: r.machine_id,
            release_prev_seq: r.release_prev_seq,
            details: r.details,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

impl From<&AuditEntry> for AuditRow {
    fn from(e: &AuditEntry) -> Self {
        AuditRow {
            seq: e.seq,
            at: e.at,
            actor: e.actor.clone(),
            action: e.action.clone(),
            release_id: e.release_id.clone(),
            machine_id: e.machine_id.clone(),
            details: e.details.clone(),
            release_prev_seq: e.release_prev_seq,
            prev_hash: e.prev_hash.clone(),
            hash: e.hash.clone(),
        }
    }
}

/// The last entry's sequence number and hash, if any.
pub(crate) async fn head(conn: &mut Conn) -> Result<Option<(i64, String)>, sqlx::Error> {
    sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetch_optional(conn).await
}

pub(crate) async fn insert(conn: &mut Conn, e: &AuditEntry) -> Result<(), sqlx::Error> {
    AuditRow::from(e).insert(conn).await
}

/// Entries after `after_seq` in order, at most `limit`, optionally for one release.
pub(crate) async fn list(
    conn: &mut Conn,
    after_seq: i64,
    limit: i64,
    release_id: Option<&str>,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM {} WHERE seq > $1 AND ($2 IS NULL OR release_id = $3) ORDER BY seq LIMIT $4",
        AuditRow::COLUMNS,
        AuditRow::TABLE
    );
    let rows: Vec<AuditRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(after_seq)
        .bind(release_id)
        .bind(release_id)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(AuditEntry::from).collect())
}

/// The seq of the newest entry about `release_id`, if any.
pub(crate) async fn last_seq_of_release(conn: &mut Conn, release_id: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT MAX(seq) FROM audit_log WHERE release_id = $1").bind(release_id).fetch_one(conn).await
}

/// The details of the newest entry with this action, if any.
pub(crate) async fn last_details(conn: &mut Conn, action: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT details FROM audit_log WHERE action = $1 ORDER BY seq DESC LIMIT 1")
        .bind(action)
        .fetch_optional(conn)
        .await
}

/// The first seq written at or after `t`, if any.
pub(crate) async fn first_seq_at_or_after(conn: &mut Conn, t: Timestamp) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT MIN(seq) FROM audit_log WHERE at >= $1").bind(t).fetch_one(conn).await
}

/// The last seq written before `t`, if any.
pub(crate) async fn last_seq_before(conn: &mut Conn, t: Timestamp) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT MAX(seq) FROM audit_log WHERE at < $1").bind(t).fetch_one(conn).await
}
