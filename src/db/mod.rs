//! Every SQL statement lives under this module. Callers own the transaction: write
//! functions take the connection of a transaction begun with [`Db::begin`].
//!
//! Each table has one row struct, declared with [`table_row!`]: its fields are the column list
//! every statement uses, so the SQL and the struct cannot drift. A release's status changes only
//! through [`transition`] (called by `service::transition`); other updates of a release go
//! through the fenced update in [`fenced`].

/// Declares a table's row struct and, from the same field list, its column list
/// (`COLUMNS`), a module of column-name constants checked by the compiler, and an INSERT of
/// the whole row. Fields under `@generated` are read but never inserted (the database makes
/// them).
macro_rules! table_row {
    (
        $(#[$meta:meta])*
        struct $name:ident in $table:literal, columns $cols:ident {
            $(@generated { $($gfield:ident : $gty:ty),* $(,)? })?
            $($(#[$fmeta:meta])* $field:ident : $ty:ty),* $(,)?
        }
    ) => {
        $(#[$meta])*
        // Some columns are stored for people reading the database, not read back by dualkey.
        #[allow(dead_code)]
        #[derive(Debug, Clone, sqlx::FromRow)]
        pub(crate) struct $name {
            $($(pub(crate) $gfield: $gty,)*)?
            $($(#[$fmeta])* pub(crate) $field: $ty,)*
        }

        /// The table's column names, one constant per field of the row struct.
        #[allow(non_upper_case_globals, dead_code)]
        pub(crate) mod $cols {
            $($(pub(crate) const $gfield: &str = stringify!($gfield);)*)?
            $(pub(crate) const $field: &str = stringify!($field);)*
        }

        #[allow(dead_code)]
        impl $name {
            pub(crate) const TABLE: &'static str = $table;
            /// Every column, in the struct's order: what every SELECT of this table names.
            pub(crate) const COLUMNS: &'static str = stringify!($($($gfield,)*)? $($field),*);

            /// `INSERT INTO <table> (<columns>) VALUES (...)` with this row's values bound.
            pub(crate) async fn insert(self, conn: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
                let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
                    "INSERT INTO {} ({}) ",
                    $table,
                    stringify!($($field),*)
                ));
                q.push_values(std::iter::once(self), |mut b, row| {
                    $(b.push_bind(row.$field);)*
                });
                q.build().execute(conn).await.map(|_| ())
            }
        }
    };
}

pub(crate) mod approvals;
pub(crate) mod audit;
pub(crate) mod batches;
pub(crate) mod checkpoints;
pub(crate) mod fenced;
pub(crate) mod fleet;
pub(crate) mod forward;
pub(crate) mod outbox;
pub(crate) mod releases;
pub(crate) mod report;
pub(crate) mod sessions;
pub(crate) mod storage;
pub(crate) mod transition;
pub(crate) mod tree;
pub(crate) mod velocity;
pub(crate) mod worker;

pub(crate) use storage::{WriteHealth, Writes, is_storage_error};

use crate::clock::Timestamp;
use crate::settings::DatabaseSettings;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Sqlite, SqliteConnection, SqlitePool, Transaction};
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use tokio::sync::watch;

/// A write transaction, begun with [`Db::begin`]. Dropped without [`Tx::commit`], it rolls back.
/// Its outcome feeds the daemon's [`WriteHealth`].
#[derive(Debug)]
pub struct Tx {
    inner: Transaction<'static, Sqlite>,
    health: WriteHealth,
    /// Where notifications of the changes in this transaction go, when `[notify]` routes any.
    routing: Option<Arc<crate::notify::Routing>>,
    /// This transaction wrote outbox messages: the delivery task is woken when it commits.
    wrote_messages: bool,
    /// Bumped when this transaction commits after appending audit entries.
    appended: Arc<watch::Sender<u64>>,
    /// This transaction appended audit entries: the forwarders are woken when it commits.
    appended_audit: bool,
    /// The log's signer, when `[audit]` has a key: `audit::record` writes checkpoints with it.
    log: Option<Arc<crate::audit::signing::LogSigner>>,
}

impl Tx {
    /// Commits. A commit is where SQLite in WAL mode writes to disk, so a storage error here
    /// turns writes off and a success turns them on again.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        let Tx { inner, health, routing, wrote_messages, appended, appended_audit, .. } = self;
        match inner.commit().await {
            Ok(()) => {
                health.succeeded();
                if let Some(r) = routing.filter(|_| wrote_messages) {
                    r.committed();
                }
                if appended_audit {
                    appended.send_modify(|n| *n = n.wrapping_add(1));
                }
                Ok(())
            }
            Err(e) => {
                health.failed(&e);
                Err(e)
            }
        }
    }
}

impl Tx {
    /// The notification routing of this daemon, if `[notify]` is configured.
    pub(crate) fn routing(&self) -> Option<Arc<crate::notify::Routing>> {
        self.routing.clone()
    }

    /// Marks that this transaction wrote outbox messages.
    pub(crate) fn wrote_messages(&mut self) {
        self.wrote_messages = true;
    }

    /// Marks that this transaction appended audit entries.
    pub(crate) fn appended_audit(&mut self) {
        self.appended_audit = true;
    }

    /// The log's signer, when `[audit]` has a key.
    pub(crate) fn log(&self) -> Option<Arc<crate::audit::signing::LogSigner>> {
        self.log.clone()
    }
}

impl Deref for Tx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.inner
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.inner
    }
}

/// The database: one write connection (SQLite has a single writer; queueing in-process is
/// cheaper than SQLite's busy-sleep) and a pool of readers.
#[derive(Clone, Debug)]
pub struct Db {
    write: SqlitePool,
    read: SqlitePool,
    health: WriteHealth,
    /// Set once at start-up when `[notify]` routes anything; every transaction carries it.
    routing: Arc<OnceLock<Arc<crate::notify::Routing>>>,
    /// Bumped after each commit that appended audit entries (see [`Db::watch_audit`]).
    appended: Arc<watch::Sender<u64>>,
    /// Set once at start-up when `[audit]` has a signing key; every transaction carries it.
    log: Arc<OnceLock<Arc<crate::audit::signing::LogSigner>>>,
}

impl Db {
    /// Opens (creating if the URL says `mode=rwc`) the database with WAL, foreign keys,
    /// `synchronous=FULL` (an audit trail must survive power loss) and a busy timeout.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, sqlx::Error> {
        let options = SqliteConnectOptions::from_str(&settings.url)?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(settings.busy_timeout.get());
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(settings.busy_timeout.get() * 2)
            .after_release(|conn, _| Box::pin(usable_after_release(conn)))
            .connect_with(options.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(settings.max_read_connections)
            .acquire_timeout(settings.busy_timeout.get())
            .connect_with(options)
            .await?;
        let appended = Arc::new(watch::channel(0).0);
        Ok(Self { write, read, health: WriteHealth::default(), routing: Arc::default(), appended, log: Arc::default() })
    }

    /// Applies the embedded migrations that have not run yet, then builds the Merkle tree of
    /// the entries written before it existed (SQLite has no SHA-256 for SQL to do it).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        use anyhow::Context;
        sqlx::migrate!("./migrations").run(&self.write).await?;
        let added = crate::audit::tree::catch_up(self).await.context("building the audit log's Merkle tree")?;
        if added > 0 {
            tracing::info!(entries = added, "built the Merkle tree of existing audit entries");
        }
        Ok(())
    }

    /// Begins a write transaction with `BEGIN IMMEDIATE`, taking SQLite's write lock up front so
    /// a read-then-write transaction (e.g. reading the audit head) cannot be overtaken.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        match self.write.begin_with("BEGIN IMMEDIATE").await {
            Ok(inner) => Ok(Tx {
                inner,
                health: self.health.clone(),
                routing: self.routing.get().cloned(),
                wrote_messages: false,
                appended: self.appended.clone(),
                appended_audit: false,
                log: self.log.get().cloned(),
            }),
            Err(e) => {
                self.health.failed(&e);
                Err(e)
            }
        }
    }

    /// From now on, transactions write the notifications `routing` asks for.
    pub(crate) fn route_notifications(&self, routing: Arc<crate::notify::Routing>) {
        let _ = self.routing.set(routing);
    }

    /// Changes after each commit of this process that appended audit entries, so the forwarders
    /// send them at once (entries other processes append are found by polling).
    pub(crate) fn watch_audit(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// From now on, commits write checkpoints signed by `log`.
    pub(crate) fn sign_log(&self, log: Arc<crate::audit::signing::LogSigner>) {
        let _ = self.log.set(log);
    }

    /// The log's signer, when `[audit]` has a key.
    pub(crate) fn log(&self) -> Option<Arc<crate::audit::signing::LogSigner>> {
        self.log.get().cloned()
    }

    /// Whether writes reach storage (see [`WriteHealth`]).
    pub fn write_health(&self) -> &WriteHealth {
        &self.health
    }

    /// Writes one row and commits: the cheapest write that reaches the disk, to learn whether
    /// storage took writes again after a failure.
    pub async fn probe_write(&self, now: Timestamp) -> Result<(), sqlx::Error> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO write_probe (id, probed_at) VALUES (1, ?)
             ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// A connection for reads.
    pub async fn reader(&self) -> Result<PoolConnection<Sqlite>, sqlx::Error> {
        self.read.acquire().await
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query_scalar::<_, i64>("SELECT 1").fetch_one(&self.read).await.is_ok()
    }

    /// Closes both pools, waiting for connections to be returned.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// Whether the write connection may go back to the pool. A dropped transaction queues its
/// ROLLBACK; once that has run, a connection still inside a transaction is one whose ROLLBACK
/// failed (after `SQLITE_FULL` SQLite may already have rolled back, and sqlx's count of open
/// transactions then never returns to zero). It would refuse every later `BEGIN`, so it is
/// closed and the pool opens a fresh one.
async fn usable_after_release(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    conn.ping().await?;
    if conn.is_in_transaction() {
        tracing::warn!("the write connection was left inside a failed transaction; opening a new one");
        return Ok(false);
    }
    Ok(true)
}

#[cfg(test)]
mod dispatch_order_tests;

#[cfg(test)]
mod migration_tests;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tree_migration_tests;
