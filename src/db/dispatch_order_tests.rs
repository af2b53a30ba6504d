//! The worker's send order with batches ([`crate::db::worker::next`]): a lapsed lease first,
//! then one turn per batch (a release alone is a batch of one) per round, oldest approval first.

use crate::clock::Timestamp;
use crate::db::worker::{Job, next};
use crate::db::{Db, Tx};
use crate::settings::DatabaseSettings;

const BATCH: &str = "01900000-0000-7000-8000-0000000000b1";

async fn database() -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let db = Db::connect(&DatabaseSettings { url, ..Default::default() }).await.unwrap();
    db.migrate().await.unwrap();
    (db, dir)
}

/// Stores release `n` in `status`, approved at `approved_at`, in `batch` when given.
async fn release(
    tx: &mut Tx,
    n: u32,
    status: &str,
    approved_at: i64,
    batch: Option<&str>,
    lease_expires_at: Option<i64>,
) {
    sqlx::query(
        "INSERT INTO releases (id, machine_id, comment, status, requested_by, requested_at, expires_at,
                               approvals_required, updated_at, approved_at, batch_id, lease_owner, lease_expires_at)
         VALUES ($1, $2, 'clean', $3, 'alice', 1, 100000, 1, 1, $4, $5, $6, $7)",
    )
    .bind(format!("01900000-0000-7000-8000-{n:012}"))
    .bind(format!("{n:040x}"))
    .bind(status)
    .bind(approved_at)
    .bind(batch)
    .bind(lease_expires_at.map(|_| "gone-worker/claim"))
    .bind(lease_expires_at)
    .execute(&mut **tx)
    .await
    .unwrap();
}

/// The release the worker sends next at `now`, then marks it sent (as a claim and send would).
async fn take_next(tx: &mut Tx, now: i64) -> Option<u32> {
    let due = next(tx, Job::Dispatch, Timestamp::from_unix_ms(now)).await.unwrap()?;
    let id = due.claim.id.to_string();
    sqlx::query("UPDATE releases SET status = 'dispatched', lease_owner = NULL, lease_expires_at = NULL WHERE id = $1")
        .bind(&id)
        .execute(&mut **tx)
        .await
        .unwrap();
    Some(id[24..].parse().unwrap())
}

#[tokio::test]
async fn a_lapsed_lease_goes_first_then_each_batch_and_each_single_release_takes_one_turn_per_round() {
    let (db, _dir) = database().await;
    let mut tx = db.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO release_batches (id, requested_by, requested_at, comment, refused) VALUES ($1, 'alice', 1, 'c', '[]')",
    )
    .bind(BATCH)
    .execute(&mut *tx)
    .await
    .unwrap();
    for n in 1..=4 {
        release(&mut tx, n, "approved", 100, Some(BATCH), None).await;
    }
    release(&mut tx, 5, "approved", 200, None, None).await;
    release(&mut tx, 6, "approved", 300, None, None).await;
    release(&mut tx, 7, "dispatching", 400, None, Some(50)).await;
    // The batch's first approval, being sent under another worker's live lease: not due, but
    // it took the batch's first turn.
    release(&mut tx, 8, "dispatching", 50, Some(BATCH), Some(5000)).await;
    let mut order = Vec::new();
    while let Some(n) = take_next(&mut tx, 1000).await {
        order.push(n);
    }
    // The takeover; round 1 is the two single releases (the batch's turn is out with 8); then
    // the batch's turns 2, 3, 4 and 5.
    assert_eq!(order, [7, 5, 6, 1, 2, 3, 4]);
}

#[tokio::test]
async fn a_release_keeps_its_turn_in_its_batch_while_the_batch_is_sent() {
    let (db, _dir) = database().await;
    let mut tx = db.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO release_batches (id, requested_by, requested_at, comment, refused) VALUES ($1, 'alice', 1, 'c', '[]')",
    )
    .bind(BATCH)
    .execute(&mut *tx)
    .await
    .unwrap();
    for n in 1..=3 {
        release(&mut tx, n, "approved", 100, Some(BATCH), None).await;
    }
    assert_eq!(take_next(&mut tx, 1000).await, Some(1));
    // A single release approved later, while the batch is being sent, goes before the batch's
    // second turn, not after the whole batch.
    release(&mut tx, 9, "approved", 900, None, None).await;
    assert_eq!(take_next(&mut tx, 1000).await, Some(9));
    assert_eq!(take_next(&mut tx, 1000).await, Some(2));
}
