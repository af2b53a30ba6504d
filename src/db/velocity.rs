//! The velocity guards' one extra question: when does a person's hourly window have room again.

use crate::clock::Timestamp;
use sqlx::SqliteConnection;

/// What a velocity guard counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counted {
    /// Releases requested by the person.
    Requests,
    /// Approvals given by the person.
    Approvals,
}

/// The time of `who`'s counted event at or after `since` that has `skip` older ones in the same
/// span; `None` when there are not that many.
pub(crate) async fn nth_oldest_since(
    conn: &mut SqliteConnection,
    counted: Counted,
    who: &str,
    since: Timestamp,
    skip: u32,
) -> Result<Option<Timestamp>, sqlx::Error> {
    let sql = match counted {
        Counted::Requests => {
            "SELECT requested_at FROM releases WHERE requested_by = ? AND requested_at >= ?
             ORDER BY requested_at LIMIT 1 OFFSET ?"
        }
        Counted::Approvals => "SELECT at FROM approvals WHERE approver = ? AND at >= ? ORDER BY at LIMIT 1 OFFSET ?",
    };
    sqlx::query_scalar(sql).bind(who).bind(since).bind(i64::from(skip)).fetch_optional(conn).await
}
