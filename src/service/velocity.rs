//! `Retry-After` for the velocity guards' 429: when the person's hourly window has room again.

use crate::clock::Timestamp;
use crate::db::Conn;
use crate::db::velocity::{Counted, nth_oldest_since};
use std::time::Duration;

/// The span a velocity guard counts over.
pub(super) const WINDOW: Duration = Duration::from_secs(3600);

/// Whole seconds (at least 1) until `who`, who has `counted` events in the window ending at
/// `now` against a limit of `limit`, may make one more: when the event whose leaving brings the
/// count under the limit is an hour old.
pub(super) async fn retry_after(
    conn: &mut Conn,
    what: Counted,
    who: &str,
    now: Timestamp,
    counted: u32,
    limit: Option<u32>,
) -> Result<u64, sqlx::Error> {
    // `counted - limit` events must leave before the one that makes room.
    let skip = counted.saturating_sub(limit.unwrap_or(0));
    let oldest = nth_oldest_since(conn, what, who, now.minus(WINDOW), skip).await?;
    Ok(oldest.map_or(1, |t| seconds_until(t.plus(WINDOW), now)))
}

/// Whole seconds from `now` to `at`, rounded up, at least 1 (a `Retry-After` of 0 invites a
/// retry that is refused again).
fn seconds_until(at: Timestamp, now: Timestamp) -> u64 {
    at.since(now).as_millis().div_ceil(1000).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_never_zero() {
        let now = Timestamp::from_unix_ms(10_000_000);
        for (at_ms, secs) in [(0, 1), (-5_000, 1), (1, 1), (1_000, 1), (1_001, 2), (3_000_000, 3000)] {
            assert_eq!(seconds_until(Timestamp::from_unix_ms(10_000_000 + at_ms), now), secs, "{at_ms} ms");
        }
    }
}
