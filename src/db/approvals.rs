//! SQL for approvals: append-only evidence of who approved which release, with which roles.

use super::releases::{corrupt, encode_json};
use crate::clock::Timestamp;
use crate::db::Conn;
use crate::domain::{Approval, ReleaseId};
use std::collections::HashMap;

table_row! {
    /// One row of `approvals`, every column.
    struct ApprovalRow in "approvals", columns col {
        release_id: String,
        approver: String,
        comment: Option<String>,
        at: Timestamp,
        /// JSON array of the approver's roles.
        roles: String,
    }
}

impl ApprovalRow {
    fn into_approval(self) -> Result<Approval, sqlx::Error> {
        let roles = serde_json::from_str(&self.roles).map_err(|e| corrupt("approver roles", e))?;
        Ok(Approval { approver: self.approver, comment: self.comment, at: self.at, roles })
    }
}

/// The approvals of one release, in the order they were given.
pub(crate) async fn of(conn: &mut Conn, id: ReleaseId) -> Result<Vec<Approval>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM {} WHERE release_id = $1 ORDER BY at, approver",
        ApprovalRow::COLUMNS,
        ApprovalRow::TABLE
    );
    let rows: Vec<ApprovalRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id.to_string()).fetch_all(conn).await?;
    rows.into_iter().map(ApprovalRow::into_approval).collect()
}

/// The approvals of a page of releases, in one query, by release id.
pub(crate) async fn of_page<'a>(
    conn: &mut Conn,
    ids: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, Vec<Approval>>, sqlx::Error> {
    let ids = encode_json(&ids.collect::<Vec<_>>())?;
    let sql = format!(
        "SELECT {} FROM {} WHERE release_id IN ({}) ORDER BY at, approver",
        ApprovalRow::COLUMNS,
        ApprovalRow::TABLE,
        super::Backend::of(conn).json_values(1)
    );
    let rows: Vec<ApprovalRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(ids).fetch_all(conn).await?;
    let mut by_release: HashMap<String, Vec<Approval>> = HashMap::new();
    for row in rows {
        by_release.entry(row.release_id.clone()).or_default().push(row.into_approval()?);
    }
    Ok(by_release)
}

/// Records an approval. The primary key refuses a second approval by the same person and a
/// trigger refuses the requester and non-pending releases (except a break-glass ratification).
pub(crate) async fn insert(
    conn: &mut Conn,
    id: ReleaseId,
    approver: &str,
    roles: &[String],
    comment: Option<&str>,
    at: Timestamp,
) -> Result<(), sqlx::Error> {
    ApprovalRow {
        release_id: id.to_string(),
        approver: approver.to_string(),
        comment: comment.map(str::to_string),
        at,
        roles: encode_json(&roles)?,
    }
    .insert(conn)
    .await
}

/// Who approved a release, in order (for the comment sent to MDE).
pub(crate) async fn approvers(conn: &mut Conn, id: ReleaseId) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT approver FROM approvals WHERE release_id = $1 ORDER BY at, approver")
        .bind(id.to_string())
        .fetch_all(conn)
        .await
}
