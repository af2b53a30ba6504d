//! SQL for release batches: the `release_batches` row (written once, never changed) and the
//! counts of its releases by status. A batch's releases are read by [`super::releases::of_batch`].

use super::releases::{corrupt, encode_json};
use crate::clock::Timestamp;
use crate::db::Conn;
use crate::domain::{Batch, BatchId};
use std::collections::{BTreeMap, HashMap};

table_row! {
    /// One row of `release_batches`, every column.
    struct BatchRow in "release_batches", columns col {
        @generated { seq: i64 }
        id: String,
        requested_by: String,
        requested_at: Timestamp,
        comment: String,
        ticket: Option<String>,
        selector: Option<String>,
        refused: String,
    }
}

impl BatchRow {
    fn into_batch(self) -> Result<(i64, Batch), sqlx::Error> {
        let batch = Batch {
            id: BatchId::parse(&self.id).map_err(|e| corrupt("batch id", e))?,
            selector: self
                .selector
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| corrupt("batch selector", e))?,
            refused: serde_json::from_str(&self.refused).map_err(|e| corrupt("batch refusals", e))?,
            requested_by: self.requested_by,
            requested_at: self.requested_at,
            comment: self.comment,
            ticket: self.ticket,
        };
        Ok((self.seq, batch))
    }
}

/// Stores `b` (before its releases, which reference it).
pub(crate) async fn insert(conn: &mut Conn, b: &Batch) -> Result<(), sqlx::Error> {
    let row = BatchRow {
        seq: 0,
        id: b.id.to_string(),
        requested_by: b.requested_by.clone(),
        requested_at: b.requested_at,
        comment: b.comment.clone(),
        ticket: b.ticket.clone(),
        selector: b.selector.as_ref().map(encode_json).transpose()?,
        refused: encode_json(&b.refused)?,
    };
    row.insert(conn).await
}

/// The batch `id`, if stored.
pub(crate) async fn get(conn: &mut Conn, id: BatchId) -> Result<Option<Batch>, sqlx::Error> {
    let sql = format!("SELECT {} FROM {} WHERE id = $1", BatchRow::COLUMNS, BatchRow::TABLE);
    let row: Option<BatchRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id.to_string()).fetch_optional(conn).await?;
    row.map(|r| r.into_batch().map(|(_, b)| b)).transpose()
}

/// Batches newest first, older than `before_seq` when given, at most `limit` (requested by
/// `requested_by` only, when given), with the `seq` of each for the next cursor.
pub(crate) async fn list(
    conn: &mut Conn,
    requested_by: Option<&str>,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<(i64, Batch)>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM {} WHERE ($1 IS NULL OR requested_by = $1) AND ($2 IS NULL OR seq < $2)
         ORDER BY seq DESC LIMIT $3",
        BatchRow::COLUMNS,
        BatchRow::TABLE
    );
    let rows: Vec<BatchRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(requested_by)
        .bind(before_seq)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    rows.into_iter().map(BatchRow::into_batch).collect()
}

/// How many releases of each of `ids` are in each status.
pub(crate) async fn counts(
    conn: &mut Conn,
    ids: impl Iterator<Item = BatchId>,
) -> Result<HashMap<String, BTreeMap<String, u32>>, sqlx::Error> {
    let ids = encode_json(&ids.map(|id| id.to_string()).collect::<Vec<_>>())?;
    let ids_in = super::Backend::of(conn).json_values(1);
    let rows: Vec<(String, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT batch_id, status, COUNT(*) FROM releases
         WHERE batch_id IN ({ids_in}) GROUP BY batch_id, status",
    )))
    .bind(ids)
    .fetch_all(conn)
    .await?;
    let mut by_batch: HashMap<String, BTreeMap<String, u32>> = HashMap::new();
    for (batch, status, n) in rows {
        by_batch.entry(batch).or_default().insert(status, u32::try_from(n).map_err(|e| corrupt("count", e))?);
    }
    Ok(by_batch)
}
