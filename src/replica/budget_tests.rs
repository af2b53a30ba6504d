//! The ledger's arithmetic against a real SQLite file, with two replicas' connections on it.

use super::*;
use crate::mde::Outlook;

const MINUTE_AND_SLACK: Duration = Duration::from_secs(61);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A time far from the epoch, `s` seconds on.
fn at(s: u64) -> Timestamp {
    Timestamp::from_unix_ms(1_800_000_000_000).plus(secs(s))
}

/// Two replicas' ledgers on one migrated SQLite file, and the directory holding it.
async fn replicas() -> (tempfile::TempDir, DbLedger, DbLedger) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let settings = crate::settings::DatabaseSettings { url, ..Default::default() };
    let a = Db::connect(&settings).await.unwrap();
    a.migrate().await.unwrap();
    let b = Db::connect(&settings).await.unwrap();
    (dir, DbLedger::new(a), DbLedger::new(b))
}

fn limits(per_minute: u32, per_hour: u32) -> Limits {
    Limits::new(per_minute, per_hour).with_slack(secs(1))
}

async fn reserve(l: &DbLedger, api: Api, limits: Limits, share: Share, now: Timestamp) -> Result<(), Timestamp> {
    l.reserve(api, limits, share, now).await.unwrap().outcome
}

async fn rows(l: &DbLedger, sql: &'static str) -> i64 {
    let mut conn = l.db.reader().await.unwrap();
    sqlx::query_scalar(sql).fetch_one(&mut *conn).await.unwrap()
}

#[tokio::test]
async fn two_replicas_together_get_the_minutes_limit_then_wait_for_the_oldest_call_to_leave_it() {
    let (_dir, a, b) = replicas().await;
    let l = limits(3, 100);
    let full = Share::Full;
    assert_eq!(reserve(&a, Api::Unisolate, l, full, at(0)).await, Ok(()));
    assert_eq!(reserve(&b, Api::Unisolate, l, full, at(1)).await, Ok(()));
    assert_eq!(reserve(&a, Api::Unisolate, l, full, at(2)).await, Ok(()));
    // The minute (plus a second of slack) is full: the call at 0 must leave first.
    assert_eq!(reserve(&b, Api::Unisolate, l, full, at(10)).await, Err(at(0).plus(MINUTE_AND_SLACK)));
    assert_eq!(reserve(&a, Api::Unisolate, l, full, at(60)).await, Err(at(61)), "slack counts");
    assert_eq!(reserve(&b, Api::Unisolate, l, full, at(61)).await, Ok(()));
    assert_eq!(reserve(&a, Api::Unisolate, l, full, at(61)).await, Err(at(62)), "then the call at 1");
    assert_eq!(rows(&a, "SELECT COUNT(*) FROM mde_calls").await, 4, "a refused call leaves no row");
}

#[tokio::test]
async fn the_hours_limit_counts_every_call_of_the_last_hour_and_slack() {
    let (_dir, a, b) = replicas().await;
    let l = limits(100, 5);
    for n in 0..5 {
        let replica = if n % 2 == 0 { &a } else { &b };
        assert_eq!(reserve(replica, Api::ListActions, l, Share::Full, at(n * 600)).await, Ok(()), "call {n}");
    }
    assert_eq!(reserve(&b, Api::ListActions, l, Share::Full, at(3000)).await, Err(at(3601)));
    assert_eq!(reserve(&a, Api::ListActions, l, Share::Full, at(3601)).await, Ok(()));
}

#[tokio::test]
async fn a_backlog_leaves_a_tenth_to_full_callers_and_the_outlook_shows_both() {
    let (_dir, a, b) = replicas().await;
    let l = limits(10, 100);
    for n in 0..9 {
        let replica = if n % 2 == 0 { &a } else { &b };
        assert_eq!(reserve(replica, Api::ListActions, l, Share::Backlog, at(n)).await, Ok(()), "call {n}");
    }
    let refused = a.reserve(Api::ListActions, l, Share::Backlog, at(20)).await.unwrap();
    assert_eq!(refused.outcome, Err(at(61)), "the backlog's nine are spent");
    assert_eq!(refused.outlook, Outlook { full: at(20), backlog: at(61) });
    assert_eq!(reserve(&b, Api::ListActions, l, Share::Full, at(20)).await, Ok(()), "the tenth is there");
    let spent = b.reserve(Api::ListActions, l, Share::Full, at(21)).await.unwrap();
    assert_eq!(spent.outlook, Outlook { full: at(61), backlog: at(62) }, "the backlog waits for the call at 1");
}

#[tokio::test]
async fn a_pause_holds_that_api_for_every_replica_and_a_shorter_one_never_shortens_it() {
    let (_dir, a, b) = replicas().await;
    let l = limits(100, 1500);
    a.pause(Api::GetMachine, at(300)).await.unwrap();
    b.pause(Api::GetMachine, at(100)).await.unwrap();
    assert_eq!(reserve(&b, Api::GetMachine, l, Share::Full, at(200)).await, Err(at(300)));
    assert_eq!(reserve(&a, Api::GetMachine, l, Share::Backlog, at(200)).await, Err(at(300)));
    assert_eq!(reserve(&b, Api::ListMachines, l, Share::Full, at(200)).await, Ok(()), "other APIs go on");
    assert_eq!(reserve(&b, Api::GetMachine, l, Share::Full, at(300)).await, Ok(()), "over when it ends");
}

#[tokio::test]
async fn calls_and_pauses_that_no_longer_count_are_pruned_at_most_once_a_minute() {
    let (_dir, a, _b) = replicas().await;
    let l = limits(100, 1500);
    assert_eq!(reserve(&a, Api::Isolate, l, Share::Full, at(0)).await, Ok(()));
    a.pause(Api::Isolate, at(10)).await.unwrap();
    assert_eq!(reserve(&a, Api::Isolate, l, Share::Full, at(10)).await, Ok(()));
    // An hour and its slack after the first call, it no longer counts; the pause ended long ago.
    assert_eq!(reserve(&a, Api::Isolate, l, Share::Full, at(3601)).await, Ok(()));
    assert_eq!(rows(&a, "SELECT COUNT(*) FROM mde_calls").await, 2, "the call at 0 is gone");
    assert_eq!(rows(&a, "SELECT COUNT(*) FROM mde_pauses").await, 0);
    // Not again within the minute: the call at 10 stays a little past its hour.
    assert_eq!(reserve(&a, Api::Isolate, l, Share::Full, at(3620)).await, Ok(()));
    assert_eq!(rows(&a, "SELECT COUNT(*) FROM mde_calls").await, 3);
    assert_eq!(reserve(&a, Api::Isolate, l, Share::Full, at(3661)).await, Ok(()));
    assert_eq!(rows(&a, "SELECT COUNT(*) FROM mde_calls").await, 3, "the call at 10 went at the next prune");
}

#[tokio::test]
async fn an_unreachable_database_is_an_error_never_a_grant() {
    let (_dir, a, _b) = replicas().await;
    a.db.close().await;
    let e = a.reserve(Api::Unisolate, limits(100, 1500), Share::Full, at(0)).await.unwrap_err();
    assert!(e.to_string().contains("shared MDE budget"), "{e}");
    assert!(a.pause(Api::Unisolate, at(60)).await.is_err());
}
