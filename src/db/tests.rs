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

#[test]
fn a_password_file_puts_its_first_line_into_the_url_and_a_bad_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, "s3cr@t/pw\n").unwrap();
    let settings = |password_file| DatabaseSettings {
        url: "postgres://dualkey@db.example:5432/dualkey?sslmode=verify-full".into(),
        password_file,
        ..Default::default()
    };
    let url = super::connect_url(&settings(Some(file.clone()))).unwrap();
    let parsed = reqwest::Url::parse(url.expose()).unwrap();
    assert_eq!(parsed.password(), Some("s3cr%40t%2Fpw"), "percent-encoded, the newline gone");
    assert_eq!(parsed.query(), Some("sslmode=verify-full"));
    assert!(settings(Some(file)).redacted_url().contains("dualkey@db.example"));
    assert!(!format!("{url:?}").contains("s3cr"), "the URL with its password is a Secret");

    let missing = super::connect_url(&settings(Some(dir.path().join("nope")))).unwrap_err().to_string();
    assert!(missing.contains("database.password_file") && missing.contains("nope"), "{missing}");
    std::fs::write(dir.path().join("empty"), "\n").unwrap();
    let empty = super::connect_url(&settings(Some(dir.path().join("empty")))).unwrap_err().to_string();
    assert!(empty.contains("is empty"), "{empty}");
}

#[test]
fn a_url_with_a_password_is_redacted_for_logs() {
    let s = DatabaseSettings { url: "postgres://dualkey:hunter2@db:5432/d".into(), ..Default::default() };
    assert_eq!(s.redacted_url(), "postgres://dualkey:REDACTED@db:5432/d");
}

#[tokio::test]
async fn what_a_transaction_observed_is_counted_when_it_commits_and_never_when_it_rolls_back() {
    use crate::clock::Timestamp;
    use crate::metrics::Observation;
    let (db, _dir) = db().await;
    let decision = || Observation::Decision { outcome: "approved", requested_at: None, at: Timestamp::EPOCH };
    let mut tx = db.begin().await.unwrap();
    tx.observe(decision());
    drop(tx);
    assert_eq!(db.metrics().snapshot().decisions.get("approved"), None, "rolled back: nothing counted");
    let mut tx = db.begin().await.unwrap();
    tx.observe(decision());
    assert_eq!(db.metrics().snapshot().decisions.get("approved"), None, "not before the commit");
    tx.commit().await.unwrap();
    assert_eq!(db.metrics().snapshot().decisions.get("approved"), Some(&1));
}
