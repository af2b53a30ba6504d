//! Migration 5 rebuilds `releases` and `approvals`: a database holding data from migrations 1
//! to 4 upgrades without losing a row, a link or a rule.

use sqlx::{ConnectOptions, Connection, SqliteConnection, sqlite::SqliteConnectOptions};
use std::str::FromStr;

async fn at_migration_4() -> (SqliteConnection, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir("migrations/sqlite").unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.as_str() < "20261128000005" {
            std::fs::copy(&path, dir.path().join(name)).unwrap();
        }
    }
    let mut conn =
        SqliteConnectOptions::from_str("sqlite::memory:").unwrap().foreign_keys(true).connect().await.unwrap();
    sqlx::migrate::Migrator::new(dir.path()).await.unwrap().run(&mut conn).await.unwrap();
    (conn, dir)
}

const APPROVE_1: &str = "INSERT INTO approvals (release_id, approver, at)
                         VALUES ('00000000-0000-0000-0000-000000000001', 'bob', 2)";
const CAROL_APPROVES_1: &str = "INSERT INTO approvals (release_id, approver, at)
                                VALUES ('00000000-0000-0000-0000-000000000001', 'carol', 3)";
const REQUEST_4: &str = "INSERT INTO releases (id, machine_id, comment, status, requested_by, requested_at, expires_at,
                                               approvals_required, updated_at)
                         VALUES ('00000000-0000-0000-0000-000000000004', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
                                 'c', 'pending', 'alice', 1, 10, 1, 1)";

async fn refused(conn: &mut SqliteConnection, sql: &'static str) -> String {
    sqlx::query(sql).execute(&mut *conn).await.unwrap_err().to_string()
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) {
    sqlx::query(sql).execute(&mut *conn).await.unwrap();
}

#[tokio::test]
async fn releases_approvals_and_their_rules_survive_the_rebuild() {
    let (mut conn, _dir) = at_migration_4().await;
    let insert = "INSERT INTO releases (id, machine_id, comment, status, requested_by, requested_at, expires_at,
                       approvals_required, updated_at, approved_at, break_glass, ratify_by, reisolation_action_id,
                       reisolated_at, lease_owner, lease_expires_at)";
    let m = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let rows = [
        // A plain release, approved by bob, since succeeded.
        ("00000000-0000-0000-0000-000000000001", "pending", "NULL", "0", "NULL", "NULL", "NULL"),
        // A break-glass release re-isolated before `reisolated` existed.
        ("00000000-0000-0000-0000-000000000002", "succeeded", "1", "1", "5", "'isolate-1'", "NULL"),
        // A break-glass release whose failed re-isolation parked its retry time in the lease.
        ("00000000-0000-0000-0000-000000000003", "dispatched", "1", "1", "5", "NULL", "77"),
    ];
    for (id, status, approved_at, glass, ratify_by, action, lease) in rows {
        let reisolated_at = if action == "NULL" { "NULL" } else { "6" };
        let sql = format!(
            "{insert} VALUES ('{id}', '{m}', 'clean', '{status}', 'alice', 1, 10, 1, 1, {approved_at}, {glass},
                              {ratify_by}, {action}, {reisolated_at}, NULL, {lease})"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
        if status == "pending" {
            exec(&mut conn, APPROVE_1).await;
            exec(&mut conn, "UPDATE releases SET status = 'succeeded', approved_at = 2 WHERE seq = 1").await;
        }
    }
    sqlx::migrate!("./migrations/sqlite").run(&mut conn).await.unwrap();

    let got: Vec<(i64, String, Option<i64>, Option<i64>)> =
        sqlx::query_as("SELECT seq, status, lease_expires_at, reisolation_due_at FROM releases ORDER BY seq")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        got,
        [
            (1, "succeeded".into(), None, None),
            (2, "reisolated".into(), None, None),
            (3, "dispatched".into(), None, Some(77)),
        ]
    );
    let approvals: Vec<(String, String)> =
        sqlx::query_as("SELECT release_id, approver FROM approvals").fetch_all(&mut conn).await.unwrap();
    assert_eq!(approvals, [("00000000-0000-0000-0000-000000000001".into(), "bob".into())]);
    let broken: Vec<(String,)> = sqlx::query_as("PRAGMA foreign_key_check").fetch_all(&mut conn).await.unwrap();
    assert!(broken.is_empty());

    // The rules came back with the tables.
    let e = refused(&mut conn, CAROL_APPROVES_1).await;
    assert!(e.contains("release_not_pending"), "{e}");
    let e = refused(&mut conn, "DELETE FROM approvals").await;
    assert!(e.contains("append-only"), "{e}");
    let e =
        refused(&mut conn, "INSERT INTO approvals (release_id, approver, at) VALUES ('no-such-release', 'carol', 3)")
            .await;
    assert!(e.contains("FOREIGN KEY") || e.contains("release_not_pending"), "{e}");
    let e = refused(&mut conn, "UPDATE releases SET status = 'reisolated' WHERE seq = 1").await;
    assert!(e.contains("CHECK"), "only a break-glass release is re-isolated: {e}");
    let e = refused(&mut conn, "UPDATE releases SET status = 'done' WHERE seq = 1").await;
    assert!(e.contains("CHECK"), "{e}");
    // One open release per machine, and a seq is never handed out twice.
    let e = refused(&mut conn, REQUEST_4).await;
    assert!(e.contains("UNIQUE"), "{e}");
    exec(&mut conn, "UPDATE releases SET status = 'failed' WHERE seq = 3").await;
    exec(&mut conn, REQUEST_4).await;
    let seq: i64 = sqlx::query_scalar("SELECT MAX(seq) FROM releases").fetch_one(&mut conn).await.unwrap();
    assert_eq!(seq, 4);
    conn.close().await.unwrap();
}
