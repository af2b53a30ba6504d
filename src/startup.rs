//! Building and running the daemon: bind first (so tests learn the port), then serve until
//! told to stop, with the background tasks stopping alongside.

use crate::auth::Verifier;
use crate::clock::SharedClock;
use crate::db::Db;
use crate::routes;
use crate::service::expiry;
use crate::settings::Settings;
use crate::state::AppState;
use anyhow::Context;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A daemon that has opened its database and bound its port, ready to run.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
}

impl Application {
    /// Opens and migrates the database, prepares token verification and binds `server.bind`.
    pub async fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Self> {
        let db = Db::connect(&settings.database)
            .await
            .with_context(|| format!("opening the database (database.url = {})", settings.database.url))?;
        db.migrate().await.context("applying database migrations")?;
        let verifier = Verifier::new(&settings.auth).context("preparing token verification")?;
        let listener = TcpListener::bind(&settings.server.bind)
            .await
            .with_context(|| format!("binding server.bind = {}", settings.server.bind))?;
        let addr = listener.local_addr()?;
        let state = AppState {
            db,
            settings: Arc::new(settings),
            clock,
            verifier: Arc::new(verifier),
            approved: Arc::new(Notify::new()),
        };
        Ok(Self { listener, addr, state })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves the API and runs the expiry sweeper until `shutdown` completes, then lets
    /// in-flight requests finish and closes the database.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let sweeper = tokio::spawn(expiry::run_sweeper(
            self.state.clone(),
            self.state.settings.policy.sweep_interval.get(),
            stop.clone(),
        ));
        let app = routes::router(self.state.clone());
        tracing::info!(addr = %self.addr, "dualkey listening");
        let stop_serving = stop.clone();
        axum::serve(self.listener, app)
            .with_graceful_shutdown(async move {
                tokio::select! {
                    _ = shutdown => {}
                    _ = stop_serving.cancelled() => {}
                }
            })
            .await
            .context("serving HTTP")?;
        stop.cancel();
        let _ = sweeper.await;
        self.state.db.close().await;
        tracing::info!("dualkey stopped");
        Ok(())
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
