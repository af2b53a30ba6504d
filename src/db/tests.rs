//! The write connection stays usable whatever a transaction did to it.

use super::Db;
use crate::settings::DatabaseSettings;

async fn db() -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let settings = DatabaseSettings { url, ..Default::default() };
    let db = Db::connect(&settings).await.unwrap();
    db.migrate().await.unwrap();
    (db, dir)
}

#[tokio::test]
async fn a_connection_left_inside_a_transaction_sqlite_already_ended_is_replaced() {
    let (db, _dir) = db().await;
    let mut tx = db.begin().await.unwrap();
    // What SQLITE_FULL does at COMMIT: SQLite rolls the transaction back by itself, so the
    // ROLLBACK sqlx sends when `tx` is dropped fails and sqlx still counts one open transaction.
    sqlx::query("ROLLBACK").execute(&mut *tx).await.unwrap();
    drop(tx);
    for round in 0..3 {
        let mut tx = db.begin().await.unwrap_or_else(|e| panic!("begin {round}: {e}"));
        sqlx::query(
            "INSERT INTO write_probe (id, probed_at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET probed_at = $2",
        )
        .bind(round)
        .bind(round)
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let mut conn = db.reader().await.unwrap();
    let at: i64 = sqlx::query_scalar("SELECT probed_at FROM write_probe").fetch_one(&mut *conn).await.unwrap();
    assert_eq!(at, 2);
}

#[tokio::test]
async fn a_failed_statement_leaves_nothing_written_and_the_connection_usable() {
    let (db, _dir) = db().await;
    let mut tx = db.begin().await.unwrap();
    sqlx::query("INSERT INTO write_probe (id, probed_at) VALUES (1, 1)").execute(&mut *tx).await.unwrap();
    let refused = sqlx::query("INSERT INTO write_probe (id, probed_at) VALUES (2, 2)").execute(&mut *tx).await;
    assert!(refused.is_err(), "the CHECK refuses a second row");
    drop(tx);
    db.probe_write(crate::clock::Timestamp::from_unix_ms(7)).await.unwrap();
    let mut conn = db.reader().await.unwrap();
    let rows: Vec<(i64, i64)> =
        sqlx::query_as("SELECT id, probed_at FROM write_probe").fetch_all(&mut *conn).await.unwrap();
    assert_eq!(rows, [(1, 7)], "the dropped transaction's row is gone; the probe's is there");
}
