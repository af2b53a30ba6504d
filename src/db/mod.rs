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
            pub(crate) async fn insert(self, conn: &mut $crate::db::Conn) -> Result<(), sqlx::Error> {
                let mut q = $crate::db::sql::Builder::new(format!(
                    "INSERT INTO {} ({}) VALUES (",
                    $table,
                    stringify!($($field),*)
                ));
                let mut first = true;
                $(
                    if !std::mem::take(&mut first) {
                        q.push(", ");
                    }
                    q.push_bind(self.$field);
                )*
                q.push(")");
                q.build()?.execute(conn).await.map(|_| ())
            }
        }
    };
}

pub(crate) mod approvals;
pub(crate) mod audit;
pub(crate) mod backup;
pub(crate) mod batches;
pub(crate) mod budget;
pub(crate) mod checkpoints;
pub(crate) mod copy;
pub(crate) mod fenced;
pub(crate) mod fleet;
pub(crate) mod forward;
pub(crate) mod jobs;
pub(crate) mod metrics;
pub(crate) mod outbox;
pub(crate) mod releases;
pub(crate) mod report;
pub(crate) mod sessions;
pub(crate) mod sql;
pub(crate) mod storage;
pub(crate) mod transition;
pub(crate) mod tree;
pub(crate) mod velocity;
pub(crate) mod worker;

pub(crate) use sql::Backend;
pub(crate) use storage::{WriteHealth, Writes, is_storage_error};

use crate::clock::Timestamp;
use crate::settings::DatabaseSettings;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Connection, Executor, Transaction};
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use tokio::sync::watch;

/// A connection to either backend: what every statement under this module runs on.
pub(crate) type Conn = sqlx::AnyConnection;

/// The key of the transaction-scoped advisory lock every PostgreSQL write transaction takes
/// first: writers from every replica queue on it, as SQLite's writers queue on its write lock,
/// so a read-then-write transaction (the audit head, a device's open release) cannot be
/// overtaken by another replica's. ("dualkey" in ASCII.)
pub(crate) const WRITE_LOCK: i64 = 0x0064_7561_6c6b_6579;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The migrations this binary embeds for `backend`.
pub(crate) fn migrator(backend: Backend) -> &'static sqlx::migrate::Migrator {
    match backend {
        Backend::Sqlite => &SQLITE_MIGRATIONS,
        Backend::Postgres => &POSTGRES_MIGRATIONS,
    }
}

/// A write transaction, begun with [`Db::begin`]. Dropped without [`Tx::commit`], it rolls back.
/// Its outcome feeds the daemon's [`WriteHealth`].
#[derive(Debug)]
pub struct Tx {
    inner: Transaction<'static, Any>,
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
    backend: Backend,
    /// Nothing another replica must wake for (a budget reservation, a lease renewal): no NOTIFY.
    quiet: bool,
    /// Counted in `metrics` when this transaction commits, and only then.
    observed: Vec<crate::metrics::Observation>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Tx {
    /// Commits. A commit is where the database writes to disk, so a storage error here turns
    /// writes off and a success turns them on again. On PostgreSQL the commit also tells the
    /// other replicas (`NOTIFY dualkey`) what changed, so their tasks wake at once.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        if self.backend == Backend::Postgres && !self.quiet {
            let what = match (self.wrote_messages, self.appended_audit) {
                (true, _) => "outbox",
                (false, true) => "audit",
                (false, false) => "state",
            };
            if let Err(e) = sqlx::query("SELECT pg_notify('dualkey', $1)").bind(what).execute(&mut *self.inner).await {
                self.health.failed(&e);
                return Err(e);
            }
        }
        let Tx { inner, health, routing, wrote_messages, appended, appended_audit, observed, metrics, .. } = self;
        match inner.commit().await {
            Ok(()) => {
                health.succeeded();
                if !observed.is_empty() {
                    metrics.record(observed);
                }
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

    /// Marks this transaction as one no other replica needs to hear of (a budget reservation,
    /// a lease renewal): its commit sends no NOTIFY, so the replicas' tasks are not woken for it.
    pub(crate) fn quiet(&mut self) {
        self.quiet = true;
    }

    /// Counts `o` in the daemon's metrics if this transaction commits.
    pub(crate) fn observe(&mut self, o: crate::metrics::Observation) {
        self.observed.push(o);
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
    type Target = Conn;

    fn deref(&self) -> &Conn {
        &self.inner
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.inner
    }
}

/// The database. On SQLite: one write connection (SQLite has a single writer; queueing
/// in-process is cheaper than SQLite's busy-sleep) and a pool of readers. On PostgreSQL: one
/// pool, whose write transactions queue on an advisory lock shared by every replica.
#[derive(Clone, Debug)]
pub struct Db {
    backend: Backend,
    write: AnyPool,
    read: AnyPool,
    /// The URL with its password, for connections of their own (the replicas' wake-ups).
    url: Arc<crate::secret::Secret>,
    health: WriteHealth,
    /// Set once at start-up when `[notify]` routes anything; every transaction carries it.
    routing: Arc<OnceLock<Arc<crate::notify::Routing>>>,
    /// Bumped after each commit that appended audit entries (see [`Db::watch_audit`]).
    appended: Arc<watch::Sender<u64>>,
    /// Set once at start-up when `[audit]` has a signing key; every transaction carries it.
    log: Arc<OnceLock<Arc<crate::audit::signing::LogSigner>>>,
    /// This process's counters, fed by the transactions that commit.
    metrics: Arc<crate::metrics::Metrics>,
}

/// The URL to connect with: `[database] url`, with the password of `password_file` put in.
pub(crate) fn connect_url(settings: &DatabaseSettings) -> Result<crate::secret::Secret, sqlx::Error> {
    let Some(path) = &settings.password_file else {
        return Ok(crate::secret::Secret::new(settings.url.clone()));
    };
    let config = |m: String| sqlx::Error::Configuration(m.into());
    let password = std::fs::read_to_string(path)
        .map_err(|e| config(format!("database.password_file: cannot read {}: {e}", path.display())))?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err(config(format!("database.password_file: {} is empty", path.display())));
    }
    let mut url = reqwest::Url::parse(&settings.url).map_err(|e| config(format!("database.url: {e}")))?;
    url.set_password(Some(password)).map_err(|()| config("database.url cannot hold a password".into()))?;
    Ok(crate::secret::Secret::new(url.to_string()))
}

impl Db {
    /// Opens the database `[database] url` names. SQLite (created if the URL says `mode=rwc`)
    /// gets WAL, foreign keys, `synchronous=FULL` (an audit trail must survive power loss) and a
    /// busy timeout; PostgreSQL gets a pool that gives up on an unreachable server within
    /// `busy_timeout`, so a request answers 503 instead of hanging.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let url = connect_url(settings)?;
        let backend = Backend::of_url(&settings.url);
        let options = AnyConnectOptions::from_str(url.expose())?;
        let wait = settings.busy_timeout.get();
        let (write, read) = match backend {
            Backend::Sqlite => {
                let ms = wait.as_millis();
                let write = AnyPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(wait * 2)
                    .after_connect(move |conn, _| Box::pin(sqlite_pragmas(conn, ms)))
                    .after_release(|conn, _| Box::pin(usable_after_release(conn)))
                    .connect_with(options.clone())
                    .await?;
                let read = AnyPoolOptions::new()
                    .max_connections(settings.max_read_connections)
                    .acquire_timeout(wait)
                    .after_connect(move |conn, _| Box::pin(sqlite_pragmas(conn, ms)))
                    .connect_with(options)
                    .await?;
                (write, read)
            }
            Backend::Postgres => {
                let ms = wait.as_millis();
                let pool = AnyPoolOptions::new()
                    .max_connections(settings.max_connections)
                    .acquire_timeout(wait)
                    .test_before_acquire(true)
                    .after_connect(move |conn, _| Box::pin(postgres_settings(conn, ms)))
                    .after_release(|conn, _| Box::pin(usable_after_release(conn)))
                    .connect_with(options)
                    .await?;
                (pool.clone(), pool)
            }
        };
        let appended = Arc::new(watch::channel(0).0);
        Ok(Self {
            backend,
            write,
            read,
            url: Arc::new(url),
            health: WriteHealth::default(),
            routing: Arc::default(),
            appended,
            log: Arc::default(),
            metrics: Arc::default(),
        })
    }

    /// This process's counters and histograms (`/metrics`).
    pub(crate) fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL with its password, for a connection of its own. Never log it.
    pub(crate) fn url(&self) -> &crate::secret::Secret {
        &self.url
    }

    /// Applies the embedded migrations of this backend that have not run yet, then builds the
    /// Merkle tree of the entries written before it existed (SQLite has no SHA-256 for SQL to
    /// do it). Several processes may start at once: PostgreSQL's migrations run under sqlx's
    /// advisory lock, SQLite's under a lock on a file beside the database.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        use anyhow::Context;
        match self.backend {
            Backend::Sqlite => {
                let _lock = migration_lock(self.url.expose()).await?;
                migrator(Backend::Sqlite).run(&self.write).await?;
            }
            Backend::Postgres => migrator(Backend::Postgres).run(&self.write).await?,
        }
        let added = crate::audit::tree::catch_up(self).await.context("building the audit log's Merkle tree")?;
        if added > 0 {
            tracing::info!(entries = added, "built the Merkle tree of existing audit entries");
        }
        Ok(())
    }

    /// Begins a write transaction. SQLite: `BEGIN IMMEDIATE`, taking the write lock up front so
    /// a read-then-write transaction (e.g. reading the audit head) cannot be overtaken.
    /// PostgreSQL: `BEGIN`, then the advisory lock every replica's writers share, for the same
    /// promise across replicas.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let begun = match self.backend {
            Backend::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => match self.write.begin().await {
                Ok(mut tx) => {
                    match sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(WRITE_LOCK).execute(&mut *tx).await {
                        Ok(_) => Ok(tx),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            },
        };
        match begun {
            Ok(inner) => Ok(Tx {
                inner,
                health: self.health.clone(),
                routing: self.routing.get().cloned(),
                wrote_messages: false,
                appended: self.appended.clone(),
                appended_audit: false,
                log: self.log.get().cloned(),
                backend: self.backend,
                quiet: false,
                observed: Vec::new(),
                metrics: self.metrics.clone(),
            }),
            Err(e) => {
                self.health.failed(&e);
                Err(e)
            }
        }
    }

    /// The notification routing, once `[notify]` set it.
    pub(crate) fn routing(&self) -> Option<Arc<crate::notify::Routing>> {
        self.routing.get().cloned()
    }

    /// From now on, transactions write the notifications `routing` asks for.
    pub(crate) fn route_notifications(&self, routing: Arc<crate::notify::Routing>) {
        let _ = self.routing.set(routing);
    }

    /// Changes after each commit of this process that appended audit entries, so the forwarders
    /// send them at once (entries other processes append are found by polling, or on
    /// PostgreSQL by their `NOTIFY`).
    pub(crate) fn watch_audit(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Another replica committed audit entries: wake this process's forwarders as if it had.
    pub(crate) fn others_appended(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
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
            "INSERT INTO write_probe (id, probed_at) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// A connection for reads.
    pub async fn reader(&self) -> Result<PoolConnection<Any>, sqlx::Error> {
        self.read.acquire().await.inspect_err(|e| self.health.failed(e))
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

/// What every SQLite connection is opened with (see [`Db::connect`]).
async fn sqlite_pragmas(conn: &mut Conn, busy_timeout_ms: u128) -> Result<(), sqlx::Error> {
    let pragmas = format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
         PRAGMA busy_timeout = {busy_timeout_ms};"
    );
    conn.execute(sqlx::AssertSqlSafe(pragmas)).await.map(|_| ())
}

/// What every PostgreSQL connection is opened with: a writer waits for the replicas' write
/// lock at most `busy_timeout` (then 503 `database_busy`), and times are never the server's.
async fn postgres_settings(conn: &mut Conn, busy_timeout_ms: u128) -> Result<(), sqlx::Error> {
    let settings = format!("SET lock_timeout = '{busy_timeout_ms}ms'; SET TIME ZONE 'UTC';");
    conn.execute(sqlx::AssertSqlSafe(settings)).await.map(|_| ())
}

/// Holds an exclusive lock on `<database>-migrate.lock` while SQLite migrations run, so
/// processes started together on one file apply each migration once instead of racing
/// ("table releases already exists"). In-memory databases need none.
async fn migration_lock(url: &str) -> anyhow::Result<Option<std::fs::File>> {
    use anyhow::Context;
    let Some(lock_path) = sqlite_sibling(url, "-migrate.lock")? else { return Ok(None) };
    tokio::task::spawn_blocking(move || {
        let file = open_lock_file(&lock_path)?;
        file.lock().with_context(|| format!("locking {}", lock_path.display()))?;
        Ok(Some(file))
    })
    .await?
}

/// The SQLite database file `url` names; `None` for PostgreSQL and in-memory databases.
pub(crate) fn sqlite_file(url: &str) -> anyhow::Result<Option<std::path::PathBuf>> {
    if Backend::of_url(url) != Backend::Sqlite || url.contains(":memory:") || url.contains("mode=memory") {
        return Ok(None);
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
    let path = options.get_filename();
    Ok(Some(path.to_path_buf()).filter(|p| !p.as_os_str().is_empty()))
}

/// `<database file><suffix>`, beside the SQLite file `url` names (see [`sqlite_file`]).
pub(crate) fn sqlite_sibling(url: &str, suffix: &str) -> anyhow::Result<Option<std::path::PathBuf>> {
    Ok(sqlite_file(url)?.map(|path| {
        let mut sibling = path.into_os_string();
        sibling.push(suffix);
        std::path::PathBuf::from(sibling)
    }))
}

/// Opens (creating it if missing) a lock file: only its lock matters, never its content.
pub(crate) fn open_lock_file(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use anyhow::Context;
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening the lock file {}", path.display()))
}

/// Whether a write connection may go back to the pool. A dropped transaction queues its
/// ROLLBACK; once that has run, a connection still inside a transaction is one whose ROLLBACK
/// failed (after `SQLITE_FULL` SQLite may already have rolled back, and sqlx's count of open
/// transactions then never returns to zero; a PostgreSQL connection cut mid-transaction is
/// the same). It would refuse every later `BEGIN`, so it is closed and the pool opens a fresh one.
async fn usable_after_release(conn: &mut Conn) -> Result<bool, sqlx::Error> {
    conn.ping().await?;
    if conn.is_in_transaction() {
        tracing::warn!("a write connection was left inside a failed transaction; opening a new one");
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
