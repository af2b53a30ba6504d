//! `dualkey bench`: figures from one run on one machine.
//!
//! 1. The raw commit rate with dualkey's durability settings (SQLite: WAL, synchronous=FULL,
//!    one writer, `BEGIN IMMEDIATE`; PostgreSQL: the replicas' write lock taken in each
//!    transaction), one small insert per transaction.
//! 2. Create+approve throughput through the real HTTP API (two commits per release, each with
//!    its audit entry), and its ratio to (1); for a fixed count or for a duration, with the
//!    errors counted, every release accounted for in the database and the audit chain verified.
//! 3. The latency from an approval to the unisolate call arriving at the MDE simulator.
//!
//! Each phase runs on a fresh database: a SQLite file in a temporary directory, or with
//! `--database postgres://...` a fresh schema of that PostgreSQL database, dropped afterwards.
//! `--replicas N` serves the API load from N daemons on that one database, the clients spread
//! over them round-robin.

mod log;
mod mass;

use crate::auth::mint_hs256;
use crate::clock::{Clock, SystemClock};
use crate::mde::simulator::{RouteKind, SeedMachine, Simulator, SimulatorConfig, SimulatorHandle};
use crate::settings::{EMBEDDED_DEFAULT, Settings, load_from_str};
use crate::startup::Application;
use anyhow::Context;
use serde_json::{Value, json};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How much work the benchmark does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BenchOptions {
    /// Releases created and approved through the API (and raw commits: twice this).
    pub releases: usize,
    /// Concurrent API clients.
    pub concurrency: usize,
    /// Releases whose approval-to-MDE latency is measured.
    pub latency_samples: usize,
    /// Run the API load this long instead of until `releases` are made (`releases` then bounds it).
    pub duration: Option<Duration>,
    /// Entries in the log whose checkpoint, proof and export verification are timed (0: skip).
    pub log_entries: u64,
    /// Release this many devices as one batch instead (0: the usual figures).
    pub mass: usize,
    /// Daemons serving the API load on one database.
    pub replicas: usize,
}

/// Most raw commits measured when the API load runs for a duration (the rate, not the count, matters).
const RAW_COMMITS_FOR_A_DURATION: usize = 4000;

fn machine(n: usize) -> String {
    format!("{n:08x}{}", "cd".repeat(16))
}

fn settings(url: &str) -> anyhow::Result<Settings> {
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let env = [
        ("DUALKEY_SERVER__BIND", "127.0.0.1:0".to_string()),
        ("DUALKEY_DATABASE__URL", url.to_string()),
        ("DUALKEY_AUTH__HS256_SECRET", secret),
    ];
    Ok(load_from_str(EMBEDDED_DEFAULT, "bench", env.into_iter().map(|(k, v)| (k.to_string(), v)))?)
}

/// Where the phases' databases live.
pub(crate) enum Store {
    /// A fresh SQLite file per phase in this directory.
    Sqlite(std::path::PathBuf),
    /// A fresh schema per phase in the PostgreSQL database this URL names.
    Postgres(String),
}

impl Store {
    fn name(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "SQLite",
            Store::Postgres(_) => "PostgreSQL",
        }
    }

    /// A fresh database for phase `name`, and the schema to drop after it (PostgreSQL).
    async fn phase(&self, name: &str) -> anyhow::Result<(String, Option<String>)> {
        match self {
            Store::Sqlite(dir) => Ok((format!("sqlite://{}?mode=rwc", dir.join(format!("{name}.db")).display()), None)),
            Store::Postgres(url) => {
                let schema = format!("dualkey_bench_{name}_{:08x}", rand::random::<u32>());
                let mut conn = sqlx::PgConnection::connect(url).await.context("connecting to --database")?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut conn)
                    .await
                    .context("creating the bench's schema")?;
                conn.close().await?;
                let mut u = reqwest::Url::parse(url)?;
                u.query_pairs_mut().append_pair("options", &format!("-c search_path={schema}"));
                Ok((u.to_string(), Some(schema)))
            }
        }
    }

    /// Drops what [`Store::phase`] made for a phase.
    async fn done(&self, schema: Option<String>) -> anyhow::Result<()> {
        if let (Store::Postgres(url), Some(schema)) = (self, schema) {
            let mut conn = sqlx::PgConnection::connect(url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&mut conn).await?;
            conn.close().await?;
        }
        Ok(())
    }
}

/// Runs the three measurements and prints them. False when the load saw an error, a release is
/// not accounted for, or the audit chain does not verify.
pub(crate) async fn run(opts: BenchOptions, database: Option<&str>) -> anyhow::Result<bool> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let store = match database {
        Some(url) if crate::db::Backend::of_url(url) == crate::db::Backend::Postgres => Store::Postgres(url.into()),
        Some(url) => anyhow::bail!(
            "--database takes a postgres:// URL (SQLite is the default), not `{}`",
            crate::settings::redacted(url)
        ),
        None => Store::Sqlite(dir.path().to_path_buf()),
    };
    if opts.mass > 0 {
        let (url, schema) = store.phase("mass").await?;
        let sound = mass::run(settings(&url)?, opts.mass).await;
        store.done(schema).await?;
        return sound;
    }
    match opts.duration {
        Some(d) => println!(
            "dualkey bench: {} clients for {}, at most {} releases, {} latency samples",
            opts.concurrency,
            humantime::format_duration(d),
            opts.releases,
            opts.latency_samples
        ),
        None => println!(
            "dualkey bench: {} releases, {} clients, {} latency samples",
            opts.releases, opts.concurrency, opts.latency_samples
        ),
    }
    match &store {
        Store::Sqlite(_) => println!("database: SQLite; WAL, synchronous=FULL, one write connection, BEGIN IMMEDIATE"),
        Store::Postgres(url) => println!(
            "database: PostgreSQL at {}; each write transaction takes the replicas' write lock; {} replica(s)",
            crate::settings::redacted(url),
            opts.replicas
        ),
    }
    let raw_n =
        if opts.duration.is_some() { RAW_COMMITS_FOR_A_DURATION.min(opts.releases * 2) } else { opts.releases * 2 };
    let (url, schema) = store.phase("raw").await?;
    let raw = raw_commits(&url, raw_n).await?;
    store.done(schema).await?;
    println!("raw {} commits:{}{raw:>9.0} commits/s", store.name(), " ".repeat(17 - store.name().len()));
    let (url, schema) = store.phase("api").await?;
    let load = api_throughput(&settings(&url)?, opts).await;
    store.done(schema).await?;
    let load = load?;
    println!(
        "API create+approve:           {:>9.0} releases/s ({:.0} commits/s, each with its audit entry)",
        load.releases_per_sec(),
        2.0 * load.releases_per_sec()
    );
    println!("ratio API commits / raw:      {:>9.2}", 2.0 * load.releases_per_sec() / raw);
    println!("{load}");
    let (url, schema) = store.phase("latency").await?;
    let lat = approval_to_mde(&settings(&url)?, opts.latency_samples).await;
    store.done(schema).await?;
    let mut lat = lat?;
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    println!(
        "approval -> unisolate at MDE: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (from the approval's HTTP answer; n={})",
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(*lat.last().unwrap_or(&Duration::ZERO)),
        lat.len()
    );
    let log_sound = if opts.log_entries > 0 { log::run(dir.path(), opts.log_entries).await? } else { true };
    Ok(load.is_sound() && log_sound)
}

/// What the API load did, and what the database holds after it.
struct LoadRun {
    clients: usize,
    replicas: usize,
    elapsed: Duration,
    /// Answers seen by the clients.
    created: usize,
    approved: usize,
    errors: usize,
    first_error: Option<String>,
    /// Rows in the database after the run.
    stored: i64,
    stored_approved: i64,
    chain: crate::audit::VerifyReport,
}

impl LoadRun {
    fn releases_per_sec(&self) -> f64 {
        self.approved as f64 / self.elapsed.as_secs_f64()
    }

    /// No error, every release the clients saw created and approved is stored so, and no other;
    /// the chain verifies.
    fn is_sound(&self) -> bool {
        self.errors == 0
            && self.stored == self.created as i64
            && self.stored_approved == self.approved as i64
            && self.created == self.approved
            && self.chain.is_ok()
    }
}

impl std::fmt::Display for LoadRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "load: {} clients on {} daemon(s), {:.1} s: {} requested, {} approved, {} errors{}",
            self.clients,
            self.replicas,
            self.elapsed.as_secs_f64(),
            self.created,
            self.approved,
            self.errors,
            self.first_error.as_deref().map(|e| format!(" (first: {e})")).unwrap_or_default()
        )?;
        let chain = match &self.chain {
            crate::audit::VerifyReport::Intact { entries, .. } => format!("audit chain verified ({entries} entries)"),
            crate::audit::VerifyReport::Broken { first_bad_seq, .. } => {
                format!("audit chain BROKEN at entry {first_bad_seq}")
            }
        };
        let verdict = if self.is_sound() { "every release accounted for" } else { "NOT ACCOUNTED FOR" };
        write!(f, "stored: {} releases, {} approved: {verdict}; {chain}", self.stored, self.stored_approved)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A daemon running in this process, with tokens for a requester and an approver.
struct Daemon {
    base: String,
    requester: String,
    approver: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Daemon {
    async fn start(settings: Settings) -> anyhow::Result<Self> {
        let now = SystemClock.now().to_datetime();
        let ttl = Duration::from_secs(3600);
        let a = &settings.auth;
        let requester = mint_hs256(a, "bench-requester", std::slice::from_ref(&a.requester_role), ttl, now)?;
        let approver = mint_hs256(a, "bench-approver", std::slice::from_ref(&a.approver_role), ttl, now)?;
        let app = Application::build(settings, Arc::new(SystemClock)).await?;
        let base = format!("http://{}", app.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Ok(Self { base, requester, approver, stop, server })
    }

    /// `method path` with `token` and an optional JSON body; the answer's JSON (`null` for none).
    /// Any status but 2xx is an error.
    async fn call(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut request = http.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let bytes = request.send().await?.error_for_status()?.bytes().await?;
        Ok(if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes)? })
    }

    /// Requests a release for `machine_id` (one commit with its audit entry); its id.
    async fn request(&self, http: &reqwest::Client, machine_id: &str) -> anyhow::Result<String> {
        let body = json!({"machine_id": machine_id, "comment": "benchmark release request"});
        let created = self.call(http, reqwest::Method::POST, "/api/v1/releases", &self.requester, Some(&body)).await?;
        Ok(created["id"].as_str().context("release without id")?.to_string())
    }

    /// Approves release `id` (one commit with its audit entry).
    async fn approve(&self, http: &reqwest::Client, id: &str) -> anyhow::Result<()> {
        let path = format!("/api/v1/releases/{id}/approve");
        self.call(http, reqwest::Method::POST, &path, &self.approver, None).await.map(|_| ())
    }

    /// Requests a release for `machine_id` and approves it: two commits, each with its audit entry.
    async fn request_and_approve(&self, http: &reqwest::Client, machine_id: &str) -> anyhow::Result<()> {
        let id = self.request(http, machine_id).await?;
        self.approve(http, &id).await
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.server.await?
    }
}

/// Sequential single-insert transactions with the daemon's connection settings.
async fn raw_commits(url: &str, n: usize) -> anyhow::Result<f64> {
    if crate::db::Backend::of_url(url) == crate::db::Backend::Postgres {
        return raw_postgres_commits(url, n).await;
    }
    let options = SqliteConnectOptions::from_str(url)?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
    sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)").execute(&pool).await?;
    let started = Instant::now();
    for i in 0..n {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("INSERT INTO t (body) VALUES ($1)")
            .bind(format!("row {i} of the raw commit benchmark"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    pool.close().await;
    Ok(rate)
}

/// The PostgreSQL equivalent: each transaction takes the write lock the replicas share, then
/// inserts one row.
async fn raw_postgres_commits(url: &str, n: usize) -> anyhow::Result<f64> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::query("CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, body TEXT NOT NULL)")
        .execute(&mut conn)
        .await?;
    let started = Instant::now();
    for i in 0..n {
        let mut tx = conn.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(crate::db::WRITE_LOCK).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO t (body) VALUES ($1)")
            .bind(format!("row {i} of the raw commit benchmark"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    conn.close().await?;
    Ok(rate)
}

/// Starts a simulator with `machines` isolated devices and points `settings` at it, with MDE's
/// rate limits lifted on both sides, so the figures are dualkey's own cost, not MDE's budget.
async fn simulator_for(settings: &mut Settings, machines: usize) -> anyhow::Result<SimulatorHandle> {
    let limit = 1_000_000;
    let sim_config = SimulatorConfig {
        machines: (0..machines).map(|n| SeedMachine::isolated(&machine(n), "bench.contoso.com")).collect(),
        rate_per_minute: limit,
        rate_per_hour: limit * 15,
        ..SimulatorConfig::default()
    };
    let sim = Simulator::start(sim_config).await?;
    point_at(settings, &sim, limit, limit * 15)?;
    Ok(sim)
}

/// Points `settings`' `[mde]` at `sim`, with the client's budget set to `per_minute` and
/// `per_hour` per API.
fn point_at(settings: &mut Settings, sim: &SimulatorHandle, per_minute: u32, per_hour: u32) -> anyhow::Result<()> {
    let client = sim.client_config().context("simulator without a client secret")?;
    let m = &mut settings.mde;
    (m.api_base, m.token_url, m.scope, m.client_id) =
        (Some(client.api_base), Some(client.token_url), Some(client.scope), Some(client.client_id));
    m.client_secret = sim.config().client_secret.clone();
    (m.rate_per_minute, m.rate_per_hour) = (per_minute, per_hour);
    Ok(())
}

/// What the clients count while the load runs.
#[derive(Default)]
struct Tally {
    next: AtomicUsize,
    created: AtomicUsize,
    approved: AtomicUsize,
    errors: AtomicUsize,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Tally {
    fn error(&self, e: anyhow::Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.first_error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| format!("{e:#}"));
    }
}

/// `concurrency` clients each creating and approving releases over HTTP, one device each, until
/// `releases` are made or `duration` passes; then the database is counted and the chain verified.
async fn api_throughput(settings: &Settings, opts: BenchOptions) -> anyhow::Result<LoadRun> {
    let mut settings = settings.clone();
    let sim = simulator_for(&mut settings, opts.releases).await?;
    settings.mde.worker_enabled = false;
    let mut daemons = Vec::with_capacity(opts.replicas);
    for _ in 0..opts.replicas.max(1) {
        daemons.push(Arc::new(Daemon::start(settings.clone()).await?));
    }
    let http = reqwest::Client::new();
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let deadline = opts.duration.map(|d| started + d);
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..opts.concurrency {
        let daemon = daemons[client % daemons.len()].clone();
        let (http, tally) = (http.clone(), tally.clone());
        clients.spawn(async move {
            while deadline.is_none_or(|d| Instant::now() < d) {
                let n = tally.next.fetch_add(1, Ordering::Relaxed);
                if n >= opts.releases {
                    break;
                }
                match daemon.request(&http, &machine(n)).await {
                    Ok(id) => {
                        tally.created.fetch_add(1, Ordering::Relaxed);
                        match daemon.approve(&http, &id).await {
                            Ok(()) => tally.approved.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                tally.error(e);
                                continue;
                            }
                        };
                    }
                    Err(e) => tally.error(e),
                }
            }
        });
    }
    while let Some(r) = clients.join_next().await {
        r?;
    }
    let elapsed = started.elapsed();
    for daemon in daemons {
        Arc::into_inner(daemon).context("clients still hold the daemon")?.stop().await?;
    }
    sim.shutdown().await;
    let db = crate::db::Db::connect(&settings.database).await.context("opening the bench database")?;
    let chain = crate::audit::verify_db(&db).await?;
    let (stored, stored_approved): (i64, i64) = {
        let mut conn = db.reader().await?;
        sqlx::query_as("SELECT COUNT(*), COUNT(*) FILTER (WHERE status = 'approved') FROM releases")
            .fetch_one(&mut *conn)
            .await?
    };
    db.close().await;
    let tally = Arc::into_inner(tally).context("clients still hold the tally")?;
    Ok(LoadRun {
        clients: opts.concurrency,
        replicas: opts.replicas.max(1),
        elapsed,
        created: tally.created.into_inner(),
        approved: tally.approved.into_inner(),
        errors: tally.errors.into_inner(),
        first_error: tally.first_error.into_inner().unwrap_or_else(|p| p.into_inner()),
        stored,
        stored_approved,
        chain,
    })
}

/// For each sample: request, approve, and time until the simulator sees the unisolate call.
/// MDE's rate limits are lifted here too: each release reads the device twice at request time
/// and twice before sending, so a real budget (100 a minute per API, less the tenth sends leave
/// to re-isolations) would hold samples back by the minute and time MDE's budget, not dualkey.
async fn approval_to_mde(settings: &Settings, samples: usize) -> anyhow::Result<Vec<Duration>> {
    let mut settings = settings.clone();
    let sim = simulator_for(&mut settings, samples).await?;
    let m = &mut settings.mde;
    m.worker_enabled = true;
    m.poll_interval = "1h".parse().map_err(anyhow::Error::msg)?;
    let daemon = Daemon::start(settings).await?;
    let http = reqwest::Client::new();
    let mut latencies = Vec::with_capacity(samples);
    for n in 0..samples {
        daemon.request_and_approve(&http, &machine(n)).await?;
        let answered = Instant::now();
        // The simulator runs on the system clock: it times receipts in real monotonic time.
        let answered_at = SystemClock.monotonic();
        let deadline = answered + Duration::from_secs(10);
        let arrived = loop {
            if let Some(r) = sim.requests().into_iter().filter(|r| r.kind == RouteKind::Unisolate).nth(n) {
                break r.instant;
            }
            anyhow::ensure!(Instant::now() < deadline, "the unisolate call for sample {n} never arrived");
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        latencies.push(arrived.saturating_since(answered_at));
    }
    daemon.stop().await?;
    sim.shutdown().await;
    Ok(latencies)
}
