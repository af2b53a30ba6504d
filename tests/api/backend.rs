//! Which database the suite runs on. Unset `DUALKEY_TEST_POSTGRES`: each test app gets a fresh
//! SQLite file. Set it to a PostgreSQL URL (`.ci/run` creates one database per run): each test
//! app gets a fresh database on that server, named after the run's database (`<run>_<pid>_<tag>_<n>`);
//! `.ci/run` drops them all at the end of the run (a restarted daemon reuses its database, so a
//! test never drops one itself).

use sqlx::{Connection, Executor};
use std::sync::atomic::{AtomicU32, Ordering};

/// The run's PostgreSQL database, when the suite runs on PostgreSQL.
pub fn postgres() -> Option<String> {
    std::env::var("DUALKEY_TEST_POSTGRES").ok().filter(|s| !s.trim().is_empty())
}

/// True when the suite runs on PostgreSQL: for the rare test that can only run on SQLite (none
/// today), to return early. Helpers that must know a database's backend ask its pool instead
/// ([`pool_is_postgres`]): an app on a small filesystem (`spawn_on_in`) is SQLite on any run.
#[allow(dead_code)]
pub fn is_postgres() -> bool {
    postgres().is_some()
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let mut u = reqwest::Url::parse(url).expect("DUALKEY_TEST_POSTGRES is a URL");
    u.set_path(&format!("/{name}"));
    u.to_string()
}

/// A fresh, empty database: a new PostgreSQL database on the run's server, or a new SQLite
/// file in `dir`.
pub async fn fresh_url(dir: &std::path::Path) -> String {
    match postgres() {
        Some(run) => fresh_postgres(&run).await,
        None => format!("sqlite://{}?mode=rwc", dir.join("dualkey.db").display()),
    }
}

/// A new database on the run's server: `<run database>_<pid>_<tag>_<n>`, `tag` random per test
/// process, so a run database used for run after run never meets a name a reused pid left.
pub async fn fresh_postgres(run: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    static TAG: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| format!("{:08x}", rand::random::<u32>()));
    let base = reqwest::Url::parse(run).unwrap().path().trim_start_matches('/').to_string();
    let name = format!("{base}_{}_{}_{}", std::process::id(), *TAG, N.fetch_add(1, Ordering::SeqCst));
    let mut admin = sqlx::PgConnection::connect(run).await.expect("connecting to DUALKEY_TEST_POSTGRES");
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\" TEMPLATE template0")))
        .await
        .expect("creating a test database");
    let _ = admin.close().await;
    with_database(run, &name)
}

/// A pool on the database `url` names, whichever backend it is.
pub async fn pool(url: &str) -> sqlx::AnyPool {
    try_pool(url).await.unwrap()
}

/// Like [`pool`], for a database that may not exist yet (a daemon still starting creates it).
pub async fn try_pool(url: &str) -> Result<sqlx::AnyPool, sqlx::Error> {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url).await
}

/// True when `pool` is on PostgreSQL.
pub async fn pool_is_postgres(pool: &sqlx::AnyPool) -> bool {
    pool.acquire().await.unwrap().backend_name().eq_ignore_ascii_case("PostgreSQL")
}

/// Drops the trigger `name` on `table`: PostgreSQL needs the table named, SQLite refuses it.
pub async fn drop_trigger(pool: &sqlx::AnyPool, table: &str, name: &str) {
    let sql = if pool_is_postgres(pool).await {
        format!("DROP TRIGGER {name} ON {table}")
    } else {
        format!("DROP TRIGGER {name}")
    };
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await.unwrap();
}

/// Adds a trigger that makes every insert into `table` fail with `message`.
pub async fn refuse_inserts(pool: &sqlx::AnyPool, table: &str, message: &str) {
    let name = format!("{table}_broken");
    let sql = if pool_is_postgres(pool).await {
        // The schema's own refusal function raises its argument as the message.
        format!(
            "CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION dualkey_refuse('{message}')"
        )
    } else {
        format!("CREATE TRIGGER {name} BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, '{message}'); END")
    };
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await.unwrap();
}
