//! SQL for the console's sign-ins under way and its sessions. Only hashes of the secrets a
//! browser holds (the OAuth state, the login and session cookies) are stored.

use super::releases::{corrupt, encode_json};
use crate::clock::Timestamp;
use crate::db::Conn;

table_row! {
    /// One row of `console_logins`: a sign-in sent to the identity provider, not back yet.
    struct LoginRow in "console_logins", columns login_col {
        state_hash: String,
        binding_hash: String,
        nonce: String,
        verifier: String,
        return_to: String,
        /// 1 when the sign-in was asked for again before a decision (0 or 1 on both backends).
        reauth: i64,
        created_at: Timestamp,
    }
}

table_row! {
    /// One row of `console_sessions`.
    struct SessionRow in "console_sessions", columns session_col {
        id_hash: String,
        principal: String,
        upn: Option<String>,
        name: Option<String>,
        /// JSON array.
        roles: String,
        csrf_token: String,
        signed_in_at: Timestamp,
        auth_time: Timestamp,
        /// JSON array, when the identity provider gave one.
        amr: Option<String>,
        last_seen_at: Timestamp,
        expires_at: Timestamp,
        ended_at: Option<Timestamp>,
    }
}

impl SessionRow {
    pub(crate) fn roles(&self) -> Result<Vec<String>, sqlx::Error> {
        serde_json::from_str(&self.roles).map_err(|e| corrupt("session roles", e))
    }

    pub(crate) fn amr(&self) -> Result<Option<Vec<String>>, sqlx::Error> {
        self.amr.as_deref().map(serde_json::from_str).transpose().map_err(|e| corrupt("session amr", e))
    }
}

/// Stores a sign-in under way.
pub(crate) async fn start_login(conn: &mut Conn, row: LoginRow) -> Result<(), sqlx::Error> {
    row.insert(conn).await
}

/// How many sign-ins are under way (started, not back yet, not swept).
pub(crate) async fn logins_under_way(conn: &mut Conn) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM console_logins").fetch_one(conn).await
}

/// Takes (reads and deletes) the sign-in with this state hash: a state works once.
pub(crate) async fn take_login(conn: &mut Conn, state_hash: &str) -> Result<Option<LoginRow>, sqlx::Error> {
    let sql = format!("DELETE FROM {} WHERE state_hash = $1 RETURNING {}", LoginRow::TABLE, LoginRow::COLUMNS);
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(state_hash).fetch_optional(conn).await
}

/// Deletes sign-ins started before `before` and sessions that ended or expired before it.
pub(crate) async fn sweep(conn: &mut Conn, before: Timestamp) -> Result<u64, sqlx::Error> {
    let logins =
        sqlx::query("DELETE FROM console_logins WHERE created_at < $1").bind(before).execute(&mut *conn).await?;
    let sessions = sqlx::query("DELETE FROM console_sessions WHERE expires_at < $1 OR ended_at < $1")
        .bind(before)
        .execute(&mut *conn)
        .await?;
    Ok(logins.rows_affected() + sessions.rows_affected())
}

/// Stores a new session.
pub(crate) async fn create(conn: &mut Conn, row: SessionRow) -> Result<(), sqlx::Error> {
    row.insert(conn).await
}

/// A session that has not ended, by the hash of its cookie.
pub(crate) async fn live(conn: &mut Conn, id_hash: &str) -> Result<Option<SessionRow>, sqlx::Error> {
    let sql =
        format!("SELECT {} FROM {} WHERE id_hash = $1 AND ended_at IS NULL", SessionRow::COLUMNS, SessionRow::TABLE);
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id_hash).fetch_optional(conn).await
}

/// Records that the session was used at `at`.
pub(crate) async fn touch(conn: &mut Conn, id_hash: &str, at: Timestamp) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE console_sessions SET last_seen_at = $2 WHERE id_hash = $1 AND ended_at IS NULL")
        .bind(id_hash)
        .bind(at)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Ends the session (sign-out, or time ran out). True when it was live until now.
pub(crate) async fn end(conn: &mut Conn, id_hash: &str, at: Timestamp) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE console_sessions SET ended_at = $2 WHERE id_hash = $1 AND ended_at IS NULL")
        .bind(id_hash)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The JSON text stored for a list of strings.
pub(crate) fn json_list(items: &[String]) -> Result<String, sqlx::Error> {
    encode_json(&items)
}
