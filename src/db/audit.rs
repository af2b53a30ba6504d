//! SQL for the audit log. Only INSERT and SELECT: the table refuses UPDATE and DELETE.

use crate::audit::AuditEntry;
use sqlx::{FromRow, SqliteConnection};

#[derive(FromRow)]
struct Row {
    seq: i64,
    at: i64,
    actor: String,
    action: String,
    release_id: Option<String>,
    machine_id: Option<String>,
    details: String,
    prev_hash: String,
    hash: String,
}

impl From<Row> for AuditEntry {
    fn from(r: Row) -> Self {
        AuditEntry {
            seq: r.seq,
            at: r.at,
            actor: r.actor,
            action: r.action,
            release_id: r.release_id,
            machine_id: r.machine_id,
            details: r.details,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// The last entry's sequence number and hash, if any.
pub async fn head(conn: &mut SqliteConnection) -> Result<Option<(i64, String)>, sqlx::Error> {
    sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetch_optional(conn).await
}

pub async fn insert(conn: &mut SqliteConnection, e: &AuditEntry) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (seq, at, actor, action, release_id, machine_id, details, prev_hash, hash)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(e.seq)
    .bind(e.at)
    .bind(&e.actor)
    .bind(&e.action)
    .bind(&e.release_id)
    .bind(&e.machine_id)
    .bind(&e.details)
    .bind(&e.prev_hash)
    .bind(&e.hash)
    .execute(conn)
    .await?;
    Ok(())
}

/// Entries after `after_seq` in order, at most `limit`, optionally for one release.
pub async fn list(
    conn: &mut SqliteConnection,
    after_seq: i64,
    limit: i64,
    release_id: Option<&str>,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT seq, at, actor, action, release_id, machine_id, details, prev_hash, hash
         FROM audit_log
         WHERE seq > ? AND (? IS NULL OR release_id = ?)
         ORDER BY seq
         LIMIT ?",
    )
    .bind(after_seq)
    .bind(release_id)
    .bind(release_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(AuditEntry::from).collect())
}

/// The details of the newest entry with this action, if any.
pub async fn last_details(conn: &mut SqliteConnection, action: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT details FROM audit_log WHERE action = ? ORDER BY seq DESC LIMIT 1")
        .bind(action)
        .fetch_optional(conn)
        .await
}
