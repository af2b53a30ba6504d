//! Storage failures: which database errors mean the disk under SQLite cannot be written (full,
//! I/O error, read-only, cannot open) or the PostgreSQL server cannot be reached or written,
//! and the daemon's write health that such a failure turns off until a write succeeds again.

use sqlx::error::DatabaseError;
use sqlx::sqlite::SqliteError;
use std::error::Error as StdError;
use std::sync::Arc;
use tokio::sync::watch;

/// SQLite's primary result codes (the low byte of an extended code) that mean the storage under
/// the database is failing, not the statement: `SQLITE_READONLY`, `SQLITE_IOERR` (and every
/// `SQLITE_IOERR_*`), `SQLITE_FULL`, `SQLITE_CANTOPEN`, `SQLITE_NOLFS`.
const STORAGE_CODES: [i32; 5] = [8, 10, 13, 14, 22];

/// True when `e` is a storage failure: the disk is full, an I/O error, the database (or its
/// directory) is read-only, or a file cannot be opened. The one place that decides it.
pub(crate) fn is_storage_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => is_storage_code(d.as_ref()),
        // The server is gone or unreachable: a connection broke, none could be had in time,
        // or the TLS handshake failed. (SQLite never answers with these.)
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Protocol(_) => true,
        _ => false,
    }
}

/// PostgreSQL's SQLSTATEs that mean the server, not the statement, is failing: connection
/// exceptions (class 08), insufficient resources such as a full disk (53), the server shutting
/// down or starting (57P01-57P03) and system errors such as I/O (58), plus a read-only
/// server (25006, a standby after a failover).
fn is_postgres_storage_state(state: &str) -> bool {
    ["08", "53", "58"].iter().any(|class| state.starts_with(class))
        || matches!(state, "57P01" | "57P02" | "57P03" | "25006")
}

/// True when `e` or any cause in its chain is a storage failure (for errors that went through
/// `anyhow` or another error type on the way up).
pub(crate) fn caused_by_storage(e: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(cause) = next {
        if let Some(e) = cause.downcast_ref::<sqlx::Error>() {
            if is_storage_error(e) {
                return true;
            }
        } else if let Some(d) = cause.downcast_ref::<SqliteError>()
            && is_storage_code(d)
        {
            return true;
        }
        next = cause.source();
    }
    false
}

fn is_storage_code(d: &dyn DatabaseError) -> bool {
    if let Some(pg) = d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return is_postgres_storage_state(pg.code());
    }
    let code = d.code().and_then(|c| c.parse::<i32>().ok());
    code.is_some_and(|c| STORAGE_CODES.contains(&(c & 0xff)))
}

/// Whether writes reach storage. Cheap to clone; every clone shares one state.
///
/// A write that fails with a storage error turns it off; the next write that commits (a
/// request's, the worker's, or the periodic probe's) turns it on again. Each change is logged
/// once, so an outage is one error line and one recovery line, however many writes fail.
#[derive(Debug, Clone)]
pub struct WriteHealth {
    state: Arc<watch::Sender<Writes>>,
}

/// The state [`WriteHealth`] tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    Succeeding,
    /// The last write failed with a storage error.
    Failing,
}

impl Default for WriteHealth {
    fn default() -> Self {
        Self { state: Arc::new(watch::Sender::new(Writes::Succeeding)) }
    }
}

impl WriteHealth {
    /// True unless the last write failed with a storage error.
    pub fn is_writable(&self) -> bool {
        *self.state.borrow() == Writes::Succeeding
    }

    /// Records a failed write: a storage error turns writes off (logged at the first one of an
    /// outage); any other error says nothing about storage and is ignored.
    pub fn failed(&self, e: &(dyn StdError + 'static)) {
        if !caused_by_storage(e) {
            return;
        }
        self.state.send_if_modified(|w| {
            let changed = *w == Writes::Succeeding;
            if changed {
                tracing::error!(
                    error = %e,
                    "storage failing: writes are refused with 503 storage_unavailable and /readyz is 503 \
                     until a write succeeds again (free space or fix the disk; no restart needed)"
                );
            }
            *w = Writes::Failing;
            changed
        });
    }

    /// Records a committed write: writes are on again.
    pub fn succeeded(&self) {
        self.state.send_if_modified(|w| {
            let changed = *w == Writes::Failing;
            if changed {
                tracing::info!("storage writable again: writes succeed");
            }
            *w = Writes::Succeeding;
            changed
        });
    }

    /// Follows the state, for tasks that wait for a change.
    pub fn subscribe(&self) -> watch::Receiver<Writes> {
        self.state.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_error(sql: &str) -> sqlx::Error {
        // A real SQLite error of the code under test, from a statement that raises it.
        futures::executor::block_on(async {
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect("sqlite::memory:").await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).execute(&mut conn).await.unwrap_err()
        })
    }

    #[test]
    fn a_read_only_database_is_a_storage_error_and_a_syntax_error_is_not() {
        let readonly = sqlite_error("PRAGMA query_only = 1; CREATE TABLE t (x)");
        let syntax = sqlite_error("SELEKT 1");
        assert!(is_storage_error(&readonly), "{readonly}");
        assert!(!is_storage_error(&syntax), "{syntax}");
        assert!(!is_storage_error(&sqlx::Error::RowNotFound));
        let wrapped = anyhow::Error::from(readonly).context("recording the dispatch");
        assert!(caused_by_storage(wrapped.as_ref()));
        assert!(!caused_by_storage(anyhow::Error::from(syntax).as_ref()));
    }

    #[test]
    fn write_health_turns_off_on_a_storage_error_only_and_on_at_the_next_success() {
        let health = WriteHealth::default();
        let seen = health.subscribe();
        health.failed(&sqlite_error("SELEKT 1"));
        assert!(health.is_writable(), "a bad statement says nothing about storage");
        health.failed(&sqlite_error("PRAGMA query_only = 1; CREATE TABLE t (x)"));
        assert!(!health.is_writable());
        assert!(!health.clone().is_writable(), "clones share the state");
        assert_eq!(*seen.borrow(), Writes::Failing);
        health.succeeded();
        assert!(health.is_writable());
    }
}
