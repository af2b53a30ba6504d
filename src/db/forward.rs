//! SQL for the cursors of `[[audit.forward]]`: how far each forwarder is known delivered. A
//! forwarder without a row is at 0 (it sends from seq 1); its first write creates the row. A
//! cursor only moves forward; the entries after it are sent (again) until it passes them.

use crate::clock::Timestamp;
use crate::db::Conn;

table_row! {
    /// One row of `audit_forwarders`.
    struct ForwarderRow in "audit_forwarders", columns col {
        name: String,
        delivered_seq: i64,
        last_error: Option<String>,
        last_error_at: Option<Timestamp>,
        updated_at: Timestamp,
    }
}

/// `name`'s cursor: every entry up to this seq is known delivered (0 when it has none yet).
pub(crate) async fn delivered_seq(conn: &mut Conn, name: &str) -> Result<i64, sqlx::Error> {
    let seq: Option<i64> = sqlx::query_scalar("SELECT delivered_seq FROM audit_forwarders WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await?;
    Ok(seq.unwrap_or(0))
}

/// Moves `name`'s cursor to `seq`, never back (a forwarder without a row gets one).
pub(crate) async fn advance(conn: &mut Conn, name: &str, seq: i64, now: Timestamp) -> Result<(), sqlx::Error> {
    let greatest = super::Backend::of(conn).greatest();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO audit_forwarders (name, delivered_seq, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE
             SET delivered_seq = {greatest}(audit_forwarders.delivered_seq, excluded.delivered_seq),
                 updated_at = excluded.updated_at",
    )))
    .bind(name)
    .bind(seq)
    .bind(now)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Records why `name`'s last attempt failed (a text free of secrets); the cursor stays.
pub(crate) async fn failed(conn: &mut Conn, name: &str, error: &str, at: Timestamp) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_forwarders (name, delivered_seq, last_error, last_error_at, updated_at)
         VALUES ($1, 0, $2, $3, $3)
         ON CONFLICT (name) DO UPDATE SET last_error = excluded.last_error, last_error_at = excluded.last_error_at,
                                          updated_at = excluded.updated_at",
    )
    .bind(name)
    .bind(error)
    .bind(at)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Every cursor, by name.
pub(crate) async fn list(conn: &mut Conn) -> Result<Vec<ForwarderRow>, sqlx::Error> {
    let sql = format!("SELECT {} FROM {} ORDER BY name", ForwarderRow::COLUMNS, ForwarderRow::TABLE);
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(conn).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{self, Actor, AuditEvent, Subject};
    use crate::db::Db;

    async fn db() -> (Db, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = Db::connect(&crate::settings::DatabaseSettings { url, ..Default::default() }).await.unwrap();
        db.migrate().await.unwrap();
        (db, dir)
    }

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_unix_ms(1_764_600_000_000 + ms)
    }

    #[tokio::test]
    async fn a_cursor_starts_at_zero_moves_only_forward_and_keeps_its_place_through_a_failure() {
        let (db, _dir) = db().await;
        let mut tx = db.begin().await.unwrap();
        assert_eq!(delivered_seq(&mut tx, "siem").await.unwrap(), 0, "a new forwarder sends from seq 1");
        failed(&mut tx, "siem", "HTTP 503", at(1)).await.unwrap();
        advance(&mut tx, "siem", 7, at(2)).await.unwrap();
        advance(&mut tx, "siem", 5, at(3)).await.unwrap();
        failed(&mut tx, "siem", "the receiver closed the connection", at(4)).await.unwrap();
        advance(&mut tx, "other", 2, at(5)).await.unwrap();
        tx.commit().await.unwrap();
        let mut conn = db.reader().await.unwrap();
        assert_eq!(delivered_seq(&mut conn, "siem").await.unwrap(), 7, "never back");
        let rows = list(&mut conn).await.unwrap();
        let siem = rows.iter().find(|r| r.name == "siem").unwrap();
        assert_eq!(siem.last_error.as_deref(), Some("the receiver closed the connection"));
        assert_eq!((siem.last_error_at, siem.updated_at), (Some(at(4)), at(4)));
        assert_eq!(
            rows.iter().map(|r| (r.name.as_str(), r.delivered_seq)).collect::<Vec<_>>(),
            [("other", 2), ("siem", 7)]
        );
    }

    #[tokio::test]
    async fn a_commit_that_appends_audit_entries_wakes_the_forwarders_and_no_other_does() {
        let (db, _dir) = db().await;
        let woken = db.watch_audit();
        let event = AuditEvent::ConsoleSignedOut { signed_in_at: at(0) };

        let mut tx = db.begin().await.unwrap();
        advance(&mut tx, "siem", 1, at(1)).await.unwrap();
        tx.commit().await.unwrap();
        assert!(!woken.has_changed().unwrap(), "a cursor update appends nothing");

        let mut tx = db.begin().await.unwrap();
        audit::record(&mut tx, at(2), Actor::System, Subject::default(), &event).await.unwrap();
        drop(tx);
        assert!(!woken.has_changed().unwrap(), "a rolled-back entry was never there");

        let mut tx = db.begin().await.unwrap();
        audit::record(&mut tx, at(3), Actor::System, Subject::default(), &event).await.unwrap();
        assert!(!woken.has_changed().unwrap(), "not before the commit");
        tx.commit().await.unwrap();
        assert!(woken.has_changed().unwrap(), "woken once the entry is committed");
    }
}
