//! Liveness and readiness, without authentication.

use crate::mde::TokenHealth;
use crate::state::{AppState, WorkerRun};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The longest `/readyz` waits for a token when it has to ask for one.
const TOKEN_CHECK_BOUND: Duration = Duration::from_secs(2);

/// The longest `/readyz` waits for the database to answer: a database lost is reported within
/// this bound (plus the pool's own `busy_timeout` for a connection), never by a hanging probe.
const DATABASE_CHECK_BOUND: Duration = Duration::from_secs(3);

/// A failed token is asked for again by `/readyz` at most this often.
const FAILED_TOKEN_RECHECK: Duration = Duration::from_secs(30);

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz))
}

/// `{"status": "ok"}`.
#[derive(Serialize, utoipa::ToSchema)]
struct Alive {
    /// Always `ok`.
    status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()), responses((status = 200, body = Alive)))]
async fn healthz() -> Json<Alive> {
    Json(Alive { status: "ok" })
}

/// Each part this instance needs, and whether together they let it do what it is configured to do.
#[derive(Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
struct Readiness {
    /// `ready` or `not_ready`.
    status: &'static str,
    /// `ok` or `unreachable`.
    database: &'static str,
    /// `writable`, or `failing` from a write that failed with a storage error (disk full, I/O
    /// error, read-only) until a write succeeds again.
    storage: &'static str,
    /// `running`, `off` (an API-only instance) or `stopped` (configured but not running).
    worker: &'static str,
    /// `not_configured`, `configured` (no token asked for yet), `token_ok` or `token_failing`.
    mde: &'static str,
    /// With `[[audit.forward]]`: how far each forwarder is, by name. Never makes the instance
    /// unready: an outage of a receiver delays the copies, and the cursor catches up.
    #[serde(skip_serializing_if = "Option::is_none")]
    forwarders: Option<BTreeMap<String, crate::forward::Status>>,
    /// Devices released outside dualkey that nobody has acknowledged yet (`/api/v1/bypasses`).
    /// Never makes the instance unready: dualkey works; someone walked around it.
    #[serde(skip_serializing_if = "Option::is_none")]
    bypasses: Option<i64>,
    /// This replica's role in each periodic job it runs: `leader` (it runs the job for every
    /// replica of the database) or `follower`. Never makes the instance unready.
    jobs: BTreeMap<&'static str, &'static str>,
    /// With `[mde]`: whether MDE's API answered this process's last call. Never makes the
    /// instance unready (requests and approvals go on; sends wait and are retried).
    #[serde(skip_serializing_if = "Option::is_none")]
    mde_api: Option<MdeApi>,
    /// Each background task this process runs (`worker.dispatch`, `expiry`, `delivery.<channel>`,
    /// `forward.<name>`, `checkpoints`, `job_leases`, ...): when its last pass succeeded and
    /// when one last failed. A leader's jobs run only on the replica that leads them.
    tasks: BTreeMap<String, crate::tasks::TaskHealth>,
}

/// What this process saw of MDE's API.
#[derive(Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
struct MdeApi {
    /// `reachable` (the last call got an HTTP answer, whatever its status), `unreachable`
    /// (it got none: timeout, refused, reset) or `not_contacted` (no call yet).
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_answer_at: Option<crate::clock::Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_unreachable_at: Option<crate::clock::Timestamp>,
}

impl Readiness {
    fn assess(database_ok: bool, writable: bool, worker: WorkerRun, mde: Option<&TokenHealth>) -> (StatusCode, Self) {
        let database = if database_ok { "ok" } else { "unreachable" };
        let storage = if writable { "writable" } else { "failing" };
        let worker = match worker {
            WorkerRun::Off => "off",
            WorkerRun::Running => "running",
            WorkerRun::Stopped => "stopped",
        };
        let mde = match mde {
            None => "not_configured",
            Some(TokenHealth::Unknown) => "configured",
            Some(TokenHealth::Ok) => "token_ok",
            Some(TokenHealth::Failing(_)) => "token_failing",
        };
        let ready = database_ok && writable && worker != "stopped" && mde != "token_failing";
        let (code, status) =
            if ready { (StatusCode::OK, "ready") } else { (StatusCode::SERVICE_UNAVAILABLE, "not_ready") };
        let readiness = Self {
            status,
            database,
            storage,
            worker,
            mde,
            forwarders: None,
            bypasses: None,
            jobs: BTreeMap::new(),
            mde_api: None,
            tasks: BTreeMap::new(),
        };
        (code, readiness)
    }
}

/// Ready when the database answers and its storage takes writes, a configured worker runs, and a configured MDE app can get
/// a token. Cheap: the token is asked for only when nothing is known about it (see
/// [`crate::mde::MdeClient::token_health`]); why it fails goes to the log, not to this
/// unauthenticated answer. With `[[audit.forward]]`, also each forwarder's cursor, lag and last
/// error (texts free of URLs and tokens), which never affect readiness. Also whether MDE's API
/// answered the last call and each background task's last success and failure (times only).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    security(()),
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready: `status` is `not_ready` and the parts say why", body = Readiness),
    )
)]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let token = async {
        match &state.mde {
            Some(mde) => Some(mde.token_health(TOKEN_CHECK_BOUND, FAILED_TOKEN_RECHECK).await),
            None => None,
        }
    };
    let ping = async { tokio::time::timeout(DATABASE_CHECK_BOUND, state.db.ping()).await.unwrap_or(false) };
    let (database_ok, token, forwarders) = tokio::join!(ping, token, forwarders(&state));
    let writable = state.db.write_health().is_writable();
    let (code, mut readiness) = Readiness::assess(database_ok, writable, state.worker.get(), token.as_ref());
    readiness.forwarders = forwarders;
    readiness.jobs = state.jobs.roles();
    readiness.tasks = state.tasks.all();
    readiness.mde_api = state.mde.as_ref().map(|mde| {
        let seen = mde.stats().reachability();
        MdeApi { status: seen.status(), last_answer_at: seen.last_answer, last_unreachable_at: seen.last_unreachable }
    });
    if database_ok && let Ok(mut conn) = state.db.reader().await {
        readiness.bypasses = crate::db::fleet::unacknowledged(&mut conn).await.ok();
    }
    if let Some(TokenHealth::Failing(why)) = &token {
        tracing::debug!(error = %why, "not ready: no MDE token");
    }
    (code, Json(readiness))
}

/// Each configured forwarder's status; `None` without forwarders, or when the database does not
/// answer (`database` says so).
async fn forwarders(state: &AppState) -> Option<BTreeMap<String, crate::forward::Status>> {
    let names: Vec<&str> = state.settings.audit.forward.iter().map(|f| f.name.as_str()).collect();
    if names.is_empty() {
        return None;
    }
    crate::forward::status(&state.db, &names).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_is_ready_only_when_it_can_do_what_it_is_configured_to_do() {
        let failing = TokenHealth::Failing("invalid_client".into());
        let cases = [
            (true, true, WorkerRun::Off, None, true),
            (true, true, WorkerRun::Running, Some(&TokenHealth::Ok), true),
            (true, true, WorkerRun::Off, Some(&TokenHealth::Unknown), true),
            (false, true, WorkerRun::Running, Some(&TokenHealth::Ok), false),
            (true, false, WorkerRun::Running, Some(&TokenHealth::Ok), false),
            (true, true, WorkerRun::Stopped, Some(&TokenHealth::Ok), false),
            (true, true, WorkerRun::Running, Some(&failing), false),
            (true, true, WorkerRun::Off, Some(&failing), false),
        ];
        for (database_ok, writable, worker, mde, ready) in cases {
            let (code, r) = Readiness::assess(database_ok, writable, worker, mde);
            assert_eq!(code == StatusCode::OK, ready, "{r:?}");
            assert_eq!(r.status == "ready", ready, "{r:?}");
        }
    }
}
