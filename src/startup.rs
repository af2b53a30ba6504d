//! Building and running the daemon: bind first (so tests learn the port), then serve until
//! told to stop, with the background tasks stopping alongside.

use crate::auth::Verifier;
use crate::clock::SharedClock;
use crate::db::Db;
use crate::mde::{MdeClient, MdeClientConfig};
use crate::routes;
use crate::service::expiry;
use crate::settings::Settings;
use crate::state::{AppState, WorkerRun, WorkerSwitch};
use crate::worker::{Worker, WorkerConfig};
use anyhow::Context;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A daemon that has opened its database and bound its port, ready to run.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    /// The background worker, when `mde.worker_enabled`.
    worker: Option<Worker>,
    /// Where `[policy]` is re-read from on SIGHUP (`None` inside: the default file), and the
    /// SIGHUPs listened for since before start-up.
    reload_from: Option<(Option<PathBuf>, Hangups)>,
    /// The shared lock on `<database>-serve.lock` (SQLite files only), held until the daemon
    /// stops: `dualkey restore` refuses while any daemon holds it.
    serving_lock: Option<std::fs::File>,
    /// The listener of `[server] metrics_bind`, when set.
    metrics: Option<TcpListener>,
}

impl Application {
    /// Opens and migrates the database, prepares token verification and binds `server.bind`.
    pub async fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Self> {
        let serving_lock = crate::db::backup::hold_serving_lock(&settings.database.url)?;
        let db = Db::connect(&settings.database)
            .await
            .with_context(|| format!("opening the database (database.url = {})", settings.database.redacted_url()))?;
        db.migrate().await.context("applying database migrations")?;
        match crate::audit::signing::LogSigner::from_settings(&settings.audit).context("loading [audit]")? {
            Some(log) => {
                tracing::info!(key = %log.verifier_key(), origin = log.origin(), "the audit log is signed");
                db.sign_log(Arc::new(log));
            }
            None => tracing::warn!(
                "the audit log is unsigned (no [audit] signing_key_file): no checkpoints, no proofs; \
                 create a key with `dualkey audit keygen`"
            ),
        }
        let verifier = Verifier::new(&settings.auth, clock.clone()).context("preparing token verification")?;
        let listener = TcpListener::bind(&settings.server.bind)
            .await
            .with_context(|| format!("binding server.bind = {}", settings.server.bind))?;
        let addr = listener.local_addr()?;
        let metrics = match &settings.server.metrics_bind {
            Some(bind) => {
                Some(TcpListener::bind(bind).await.with_context(|| format!("binding server.metrics_bind = {bind}"))?)
            }
            None => None,
        };
        let mde = if settings.mde.is_configured() {
            // Every replica on this database shares the tenant's one budget and its 429 pauses.
            let ledger = Arc::new(crate::replica::budget::DbLedger::new(db.clone()));
            let client = MdeClient::new(MdeClientConfig::from_settings(&settings.mde)?, clock.clone())
                .context("building the MDE client")?
                .with_ledger(ledger);
            Some(Arc::new(client))
        } else {
            None
        };
        let fleet = mde.clone().map(|client| {
            let config = crate::fleet::FleetConfig::from_settings(&settings.mde);
            Arc::new(crate::fleet::Fleet::new(client, clock.clone(), config))
        });
        let policy = settings.policy.validate(&settings.auth.approver_role).context("validating [policy]")?;
        let settings_worker_enabled = settings.mde.worker_enabled;
        let delivery = crate::notify::start(&settings, &db).context("preparing notifications ([notify])")?;
        let forwarders = crate::forward::start(&settings).context("preparing audit forwarding ([[audit.forward]])")?;
        let oidc = match &settings.oidc {
            Some(o) => {
                let redirect_uri = format!("{}/ui/callback", settings.console.base_url(&addr.to_string()));
                let rp = crate::auth::oidc::Oidc::new(o, &settings.auth, redirect_uri, clock.clone())
                    .context("preparing console sign-in ([oidc])")?;
                Some(Arc::new(rp))
            }
            None => None,
        };
        let jobs = {
            use crate::replica::jobs::Job;
            let configured = [
                (Job::Expiry, true),
                (Job::Checkpoints, db.log().is_some()),
                (Job::Delivery, delivery.is_some()),
                (Job::Forwarding, forwarders.is_some()),
            ];
            let jobs = configured.into_iter().filter(|(_, on)| *on).map(|(j, _)| j);
            Arc::new(crate::replica::jobs::Jobs::new(jobs, settings.mde.lease.get()))
        };
        let state = AppState {
            policy_cell: Arc::new(std::sync::RwLock::new(Arc::new(policy))),
            mde,
            fleet,
            db,
            settings: Arc::new(settings),
            clock,
            verifier: Arc::new(verifier),
            approved: Arc::new(Notify::new()),
            refusal_log: Arc::new(crate::logsafe::LogLimiter::for_refusals()),
            worker: WorkerSwitch::new(if settings_worker_enabled { WorkerRun::Stopped } else { WorkerRun::Off }),
            oidc,
            delivery,
            forwarders,
            jobs,
            tasks: Arc::default(),
            local_addr: addr,
        };
        crate::service::policy::record_policy(&state).await.context("recording the policy in the audit chain")?;
        let mut app = Self { listener, addr, state, worker: None, reload_from: None, serving_lock, metrics };
        if app.state.settings.mde.worker_enabled {
            app.worker = Some(app.worker()?);
        }
        Ok(app)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address `GET /metrics` is served on when `[server] metrics_bind` gives it its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Re-reads the settings from `config` (and the environment) on each SIGHUP `hangups`
    /// receives and puts their `[policy]` in force, or keeps the old one if the new one is
    /// invalid. A SIGHUP received since `hangups` was made, during start-up, reloads once the
    /// daemon runs.
    pub fn reload_policy_on_sighup(mut self, config: Option<PathBuf>, hangups: Hangups) -> Self {
        self.reload_from = Some((config, hangups));
        self
    }

    /// A release worker for this daemon's database and `[mde]` settings, whether or not
    /// `mde.worker_enabled` runs one in the background (tests drive it step by step).
    pub fn worker(&self) -> anyhow::Result<Worker> {
        let client = self.state.mde.clone().context("[mde] is not configured (set mde.api_base or mde.cloud)")?;
        Ok(Worker::new(self.state.clone(), client, WorkerConfig::from_settings(&self.state.settings.mde)))
    }

    /// Serves the API, runs the expiry sweeper, the storage probe, notification delivery, the
    /// audit forwarders and (when `mde.worker_enabled`) the release worker until `shutdown`
    /// completes. Then each of the worker's duties stops claiming, in-flight MDE calls get
    /// `mde.shutdown_grace` to finish, in-flight requests finish, and the database closes.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        // Declared first, dropped last: released only once the database is closed.
        let _serving_lock = self.serving_lock;
        let stop = CancellationToken::new();
        use crate::replica::jobs::Job;
        let jobs = self.state.jobs.clone();
        // Roles are known before the first request: `/readyz` never shows a half-started replica.
        if let Err(e) = jobs.round(&self.state.db, self.state.clock.now()).await {
            tracing::warn!(error = %e, "taking the periodic jobs failed; following until it works");
        }
        let leases = {
            let (jobs, db, clock, stop) = (jobs.clone(), self.state.db.clone(), self.state.clock.clone(), stop.clone());
            let tasks = self.state.tasks.clone();
            tokio::spawn(async move { jobs.run(db, clock, tasks, stop).await })
        };
        let led = |job: Job, task: fn(AppState, CancellationToken) -> BoxedTask| {
            let (jobs, state, stop) = (jobs.clone(), self.state.clone(), stop.clone());
            tokio::spawn(async move { jobs.led(job, stop, |lost| task(state.clone(), lost)).await })
        };
        let sweeper = led(Job::Expiry, |s, stop| Box::pin(expiry::run_sweeper(s, stop)));
        let probe = tokio::spawn(crate::service::storage::run_probe(self.state.clone(), stop.clone()));
        let checkpointer =
            led(Job::Checkpoints, |s, stop| Box::pin(crate::service::checkpoint::run_checkpointer(s, stop)));
        let waker = tokio::spawn(crate::replica::wake::run(self.state.clone(), stop.clone()));
        let delivery = self.state.delivery.clone().map(|_| {
            led(Job::Delivery, |s, stop| {
                let d = s.delivery.clone().expect("delivery is configured");
                Box::pin(d.run(s, stop))
            })
        });
        let forwarders = self.state.forwarders.clone().map(|_| {
            led(Job::Forwarding, |s, stop| {
                let f = s.forwarders.clone().expect("forwarders are configured");
                Box::pin(f.run(s, stop))
            })
        });
        let reloader = self.reload_from.map(|(config, hangups)| {
            tokio::spawn(reload_on_sighup(self.state.clone(), config, hangups.0, stop.clone()))
        });
        let worker = match self.worker {
            Some(w) => {
                let switch = self.state.worker.clone();
                switch.set(WorkerRun::Running);
                let stop = stop.clone();
                Some(tokio::spawn(async move {
                    // Reports the worker stopped however its task ends, a panic included.
                    let _stopped = StoppedOnDrop(switch);
                    w.run(stop).await;
                }))
            }
            None => {
                tracing::warn!("the release worker is off (mde.worker_enabled = false): approved releases wait");
                None
            }
        };
        let metrics = self.metrics.map(|listener| {
            let (app, stop) = (routes::metrics::own_listener(self.state.clone()), stop.clone());
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "metrics listening (server.metrics_bind)");
            }
            // The main listener's limits (head and body deadlines, idle and connection caps).
            let (limits, clock) = (crate::server::Limits::from(&self.state.settings.server), self.state.clock.clone());
            tokio::spawn(crate::server::serve(listener, app, limits, clock, stop.cancelled_owned()))
        });
        let app = routes::router(self.state.clone());
        tracing::info!(addr = %self.addr, "dualkey listening");
        let stop_serving = stop.clone();
        let limits = crate::server::Limits::from(&self.state.settings.server);
        crate::server::serve(self.listener, app, limits, self.state.clock.clone(), async move {
            tokio::select! {
                _ = shutdown => {}
                _ = stop_serving.cancelled() => {}
            }
            // Stop claiming new work as soon as shutdown starts.
            stop_serving.cancel();
        })
        .await;
        stop.cancel();
        let _ = sweeper.await;
        let _ = probe.await;
        let _ = checkpointer.await;
        let _ = waker.await;
        let _ = leases.await;
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        if let Some(delivery) = delivery {
            // An attempt in flight is cut short; its message stays pending and is sent again.
            delivery.abort();
            let _ = delivery.await;
        }
        if let Some(forwarders) = forwarders {
            // A batch in flight is cut short; the cursor stays before it and it is sent again.
            forwarders.abort();
            let _ = forwarders.await;
        }
        if let Some(reloader) = reloader {
            let _ = reloader.await;
        }
        if let Some(worker) = worker {
            let grace = self.state.settings.mde.shutdown_grace.get();
            tokio::select! {
                _ = worker => {}
                () = self.state.clock.sleep(grace) => {
                    tracing::warn!(?grace, "an MDE call was still in flight; it will be claimed again on the next start");
                }
            }
        }
        crate::service::checkpoint::at_shutdown(&self.state).await;
        self.state.db.close().await;
        tracing::info!("dualkey stopped");
        Ok(())
    }
}

/// Marks the worker stopped when dropped.
struct StoppedOnDrop(WorkerSwitch);

impl Drop for StoppedOnDrop {
    fn drop(&mut self) {
        self.0.set(WorkerRun::Stopped);
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown requested");
}

/// A periodic job's task, started by [`crate::replica::jobs::Jobs::led`] while this replica leads it.
type BoxedTask = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// SIGHUP, listened for from the moment this value is made: `serve` makes it first thing, so
/// a SIGHUP during start-up (`systemctl reload` while the daemon opens its database, or sent as
/// soon as its policy is recorded) is held for the reloader instead of finding no handler and
/// terminating the process, which is SIGHUP's default action.
pub struct Hangups(#[cfg(unix)] Option<tokio::signal::unix::Signal>, #[cfg(not(unix))] Option<()>);

/// Starts listening for SIGHUP; needs a Tokio runtime.
#[cfg(unix)]
pub fn listen_for_hangups() -> Hangups {
    use tokio::signal::unix::{SignalKind, signal};
    let hangups = signal(SignalKind::hangup()).ok();
    if hangups.is_none() {
        tracing::warn!("cannot listen for SIGHUP; the policy reloads only on restart");
    }
    Hangups(hangups)
}

/// Starts listening for SIGHUP: there is none here.
#[cfg(not(unix))]
pub fn listen_for_hangups() -> Hangups {
    Hangups(None)
}

#[cfg(unix)]
async fn reload_on_sighup(
    state: AppState,
    config: Option<PathBuf>,
    hangups: Option<tokio::signal::unix::Signal>,
    stop: CancellationToken,
) {
    let Some(mut hangups) = hangups else { return };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = hangups.recv() => {}
        }
        tracing::info!("SIGHUP: reloading [policy]");
        let loaded = crate::settings::load(config.as_deref(), std::env::vars());
        let path = config.as_deref().map_or_else(|| "config/default.toml".to_string(), |p| p.display().to_string());
        if let Err(e) = crate::service::policy::reload(&state, &path, loaded).await {
            tracing::error!(error = %e, "recording the policy reload failed");
        }
    }
}

#[cfg(not(unix))]
async fn reload_on_sighup(_state: AppState, _config: Option<PathBuf>, _hangups: Option<()>, _stop: CancellationToken) {}
