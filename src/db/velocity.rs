//! What the velocity guards count: a person's events in their hourly window.
//!
//! A person may appear under look-alike identities (`bob`, `BOB`), and that comparison is
//! Unicode work SQL cannot do, so the window is read by time (indexed on time, then identity)
//! and matched in Rust. Counting groups by identity first: the rows read back are the identities
//! active in the hour, not its events, which keeps the guard cheap on every request. Only the
//! refused path (`Retry-After`) reads the window's events one by one.

use crate::clock::Timestamp;
use crate::db::Conn;
use crate::domain::PersonKey;

/// What a velocity guard counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counted {
    /// Releases requested by the person.
    Requests,
    /// Approvals given by the person.
    Approvals,
}

/// How many events of this kind `who`, under any identity that is the same person
/// ([`crate::domain::same_person`]), caused since `since`.
pub(crate) async fn count_since(
    conn: &mut Conn,
    counted: Counted,
    who: &str,
    since: Timestamp,
) -> Result<u32, sqlx::Error> {
    let sql = match counted {
        Counted::Requests => {
            "SELECT requested_by, COUNT(*) FROM releases WHERE requested_at >= $1 GROUP BY requested_by"
        }
        Counted::Approvals => "SELECT approver, COUNT(*) FROM approvals WHERE at >= $1 GROUP BY approver",
    };
    let per_identity: Vec<(String, i64)> = sqlx::query_as(sql).bind(since).fetch_all(conn).await?;
    let me = PersonKey::of(who);
    let n: i64 =
        per_identity.into_iter().filter(|(id, _)| id == who || PersonKey::of(id).same_as(&me)).map(|(_, n)| n).sum();
    Ok(u32::try_from(n.max(0)).unwrap_or(u32::MAX))
}

/// The time of the person `who`'s counted event at or after `since` that has `skip` older ones
/// in the same span; `None` when there are not that many.
pub(crate) async fn nth_oldest_since(
    conn: &mut Conn,
    counted: Counted,
    who: &str,
    since: Timestamp,
    skip: u32,
) -> Result<Option<Timestamp>, sqlx::Error> {
    let sql = match counted {
        Counted::Requests => {
            "SELECT requested_by, requested_at FROM releases WHERE requested_at >= $1 ORDER BY requested_at"
        }
        Counted::Approvals => "SELECT approver, at FROM approvals WHERE at >= $1 ORDER BY at",
    };
    let events: Vec<(String, Timestamp)> = sqlx::query_as(sql).bind(since).fetch_all(conn).await?;
    let me = PersonKey::of(who);
    Ok(events
        .into_iter()
        .filter(|(id, _)| id == who || PersonKey::of(id).same_as(&me))
        .map(|(_, at)| at)
        .nth(skip as usize))
}
