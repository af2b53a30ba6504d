//! What `dualkey backup` and `dualkey restore` do to SQLite files: the online copy
//! (`VACUUM INTO`, a read transaction, so the daemon's writers never wait for it), opening a copy
//! read-only to verify it, and the lock that keeps a restore and a daemon off one file.
//!
//! The serving lock: every daemon holds a shared `flock` on `<database>-serve.lock` for its whole
//! life (replicas on one file share it); a restore takes it exclusively, without waiting, so it
//! refuses while any daemon runs and no daemon starts while it puts a copy in place. The kernel
//! drops the lock with the process, however it ends, so a crashed daemon never blocks a restore.

use super::{Backend, Db, WriteHealth, copy::Head};
use anyhow::{Context, bail};
use sqlx::ConnectOptions;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use std::fs::{File, TryLockError};
use std::path::Path;
use std::sync::Arc;

/// The suffix of the serving lock's file, beside the database file.
pub(crate) const SERVING_LOCK: &str = "-serve.lock";

/// Takes the serving lock (shared) of the SQLite file `url` names, for as long as the returned
/// file is kept. `None` for PostgreSQL and in-memory databases. Refuses while a restore holds it.
pub(crate) fn hold_serving_lock(url: &str) -> anyhow::Result<Option<File>> {
    let Some(path) = super::sqlite_sibling(url, SERVING_LOCK)? else { return Ok(None) };
    let file = super::open_lock_file(&path)?;
    match file.try_lock_shared() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => bail!(
            "a `dualkey restore` is replacing this database (it holds {}); start the daemon once it has finished",
            path.display()
        ),
        Err(TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

/// Takes the serving lock of the database file `database` exclusively, for as long as the
/// returned file is kept; refuses at once while any daemon holds it.
pub(crate) fn lock_out_daemons(database: &Path) -> anyhow::Result<File> {
    let mut path = database.as_os_str().to_owned();
    path.push(SERVING_LOCK);
    let path = std::path::PathBuf::from(path);
    let file = super::open_lock_file(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => bail!(
            "a running dualkey daemon holds {} (its lock {} is taken): stop every daemon on it first, \
             e.g. `systemctl stop dualkey`",
            database.display(),
            path.display()
        ),
        Err(TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

/// Writes a consistent snapshot of `db` (SQLite) into `out`, which must be missing or empty.
/// The copy is a plain SQLite file in rollback-journal mode: one file, nothing beside it.
#[tracing::instrument(skip_all)]
pub(crate) async fn vacuum_into(db: &Db, out: &Path) -> anyhow::Result<()> {
    if db.backend() != Backend::Sqlite {
        bail!("VACUUM INTO is SQLite's");
    }
    let out = out.to_str().with_context(|| format!("{} is not a UTF-8 path", out.display()))?;
    let mut conn = db.reader().await?;
    sqlx::query("VACUUM INTO $1").bind(out).execute(&mut *conn).await.context("VACUUM INTO")?;
    Ok(())
}

impl Db {
    /// Opens the SQLite file `path` read-only and immutable: nothing is written to it or beside
    /// it (no `-wal`, no `-shm`), which is right only for a file nobody changes meanwhile.
    async fn open_copy(path: &Path) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        if !path.is_file() {
            bail!("{} is not a file", path.display());
        }
        let url = SqliteConnectOptions::new().filename(path).read_only(true).immutable(true).to_url_lossy();
        let options = AnyConnectOptions::from_url(&url)?;
        let pool = AnyPoolOptions::new().max_connections(1).connect_with(options).await?;
        Ok(Self {
            backend: Backend::Sqlite,
            write: pool.clone(),
            read: pool,
            url: Arc::new(crate::secret::Secret::new(url.to_string())),
            health: WriteHealth::default(),
            routing: Arc::default(),
            appended: Arc::new(tokio::sync::watch::channel(0).0),
            log: Arc::default(),
            metrics: Arc::default(),
        })
    }
}

/// Opens the SQLite file `path` read-only and checks that it is a dualkey database at this
/// binary's migrations whose audit chain and tree verify (the code behind `dualkey audit
/// verify`); returns its head.
pub(crate) async fn verify_copy(path: &Path) -> anyhow::Result<Head> {
    let db =
        Db::open_copy(path).await.with_context(|| format!("cannot open {} as a SQLite database", path.display()))?;
    let checked = async {
        super::copy::check_migrated(&db).await?;
        super::copy::verified_head(&db).await
    }
    .await;
    db.close().await;
    checked
}

/// Moves what the `-wal` of the idle SQLite file `path` holds into the file itself, so that
/// nothing is lost if a restore stops between removing the `-wal` and putting the copy in place.
pub(crate) async fn checkpoint(path: &Path) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = SqliteConnectOptions::new().filename(path).connect().await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}
