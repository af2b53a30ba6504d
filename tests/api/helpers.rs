//! `spawn_app`: the real daemon on port 0 with its own SQLite file, plus token helpers that
//! sign real JWTs.

use dualkey::clock::ManualClock;
use dualkey::settings::{EMBEDDED_DEFAULT, Settings, load_from_str};
use dualkey::startup::Application;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const REQUESTER: &str = "Release.Request";
pub const APPROVER: &str = "Release.Approve";
pub const AUDITOR: &str = "Audit.Read";
pub const ISSUER: &str = "https://issuer.test/dualkey";
pub const AUDIENCE: &str = "api://dualkey-test";
pub const RS256_KEY: &[u8] = include_bytes!("../fixtures/rs256_test_key.pem");
pub const RS256_OTHER_KEY: &[u8] = include_bytes!("../fixtures/rs256_other_key.pem");
pub const RS256_PUBLIC_KEY: &[u8] = include_bytes!("../fixtures/rs256_test_pub.pem");
pub const RS256_JWKS: &str = include_str!("../fixtures/rs256_jwks.json");

/// A machine id in MDE's form; `n` picks one of many.
pub fn machine(n: u32) -> String {
    format!("{n:08x}{}", "ab".repeat(16))
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub db_url: String,
    /// The clock of the daemon and of its simulator: advancing it moves both.
    pub clock: ManualClock,
    pub secret: String,
    /// `iss` and `aud` the daemon's `[auth]` requires (the test values unless a tweak changed them).
    pub issuer: String,
    pub audience: String,
    pub config_path: PathBuf,
    /// The MDE simulator this daemon's `[mde]` points at.
    pub sim: Arc<dualkey::mde::simulator::SimulatorHandle>,
    /// A worker for this daemon, when its `[mde]` is configured.
    pub worker: Option<dualkey::worker::Worker>,
    /// `http://<addr>` of `[server] metrics_bind`, when a tweak set it.
    pub metrics_base: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

/// The simulator every test app talks to unless a test brings its own: the default seed plus
/// `machine(0)` to `machine(255)`, all isolated, with a quick action lifecycle.
pub fn test_simulator() -> dualkey::mde::simulator::SimulatorConfig {
    let mut config = quick_simulator();
    config
        .machines
        .extend((0..=255).map(|n| dualkey::mde::simulator::SeedMachine::isolated(&machine(n), "host.contoso.com")));
    config
}

/// A test app: port 0, a fresh SQLite file in a temporary directory, a random HS256 secret,
/// `[mde]` pointing at the test simulator with the background worker off, and whatever `tweak`
/// changes.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_with_simulator(test_simulator(), tweak).await
}

/// Like [`spawn_app_with`], against a simulator started from `sim_config`.
pub async fn spawn_with_simulator(
    sim_config: dualkey::mde::simulator::SimulatorConfig,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let clock = ManualClock::new();
    let sim = start_simulator(sim_config, &clock).await;
    spawn_on(sim, &clock, tweak).await
}

/// A simulator on `clock`, for daemons that share it (see [`spawn_on`]).
pub async fn start_simulator(
    sim_config: dualkey::mde::simulator::SimulatorConfig,
    clock: &ManualClock,
) -> Arc<dualkey::mde::simulator::SimulatorHandle> {
    let sim = dualkey::mde::simulator::Simulator::start_with_clock(sim_config, Arc::new(clock.clone()));
    Arc::new(sim.await.unwrap())
}

/// A test app whose `[mde]` points at an already running simulator (several apps may share
/// one), running on `clock`: pass the simulator's clock, so that advancing it moves both.
pub async fn spawn_on(
    sim: Arc<dualkey::mde::simulator::SimulatorHandle>,
    clock: &ManualClock,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    spawn_on_in(sim, clock, None, tweak).await
}

/// Like [`spawn_on`], with the SQLite file in `db_dir` (e.g. a small filesystem the test fills)
/// instead of the app's temporary directory.
pub async fn spawn_on_in(
    sim: Arc<dualkey::mde::simulator::SimulatorHandle>,
    clock: &ManualClock,
    db_dir: Option<&std::path::Path>,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let (api_base, token_url) = (sim.base_url().to_string(), sim.token_url());
    let (client_id, mde_secret) = (sim.config().client_id.clone(), sim.config().client_secret.clone());
    let dir = tempfile::tempdir().unwrap();
    let db_url = match db_dir {
        Some(db_dir) => format!("sqlite://{}?mode=rwc", db_dir.join("dualkey.db").display()),
        None => crate::backend::fresh_url(dir.path()).await,
    };
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let env = [
        ("DUALKEY_SERVER__BIND", "127.0.0.1:0".to_string()),
        ("DUALKEY_DATABASE__URL", db_url.clone()),
        ("DUALKEY_AUTH__HS256_SECRET", secret.clone()),
        ("DUALKEY_AUTH__ISSUER", ISSUER.to_string()),
        ("DUALKEY_AUTH__AUDIENCE", AUDIENCE.to_string()),
    ];
    // The same overrides as a config file, for tests of the CLI against this database.
    let config_path = dir.path().join("dualkey.toml");
    std::fs::write(
        &config_path,
        format!(
            "[database]\nurl = \"{db_url}\"\n[auth]\nhs256_secret = \"{secret}\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n[mde]\nworker_enabled = false\n"
        ),
    )
    .unwrap();
    let mut settings =
        load_from_str(EMBEDDED_DEFAULT, "test", env.iter().map(|(k, v)| (k.to_string(), v.clone()))).unwrap();
    let m = &mut settings.mde;
    (m.api_base, m.token_url, m.client_id, m.client_secret) =
        (Some(api_base), Some(token_url), Some(client_id), mde_secret);
    m.scope = Some("https://api.securitycenter.microsoft.com/.default".into());
    m.worker_enabled = false;
    m.poll_interval = "20ms".parse().unwrap();
    m.backoff_base = "10ms".parse().unwrap();
    m.backoff_max = "40ms".parse().unwrap();
    tweak(&mut settings);
    let (issuer, audience) = (settings.auth.issuer.clone(), settings.auth.audience.clone());
    let clock = clock.clone();
    let app = Application::build(settings, Arc::new(clock.clone())).await.expect("app builds");
    let worker = app.worker().ok();
    let base = format!("http://127.0.0.1:{}", app.port());
    let metrics_base = app.metrics_addr().map(|a| format!("http://{a}"));
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    TestApp {
        base,
        http: reqwest::Client::new(),
        db_url,
        clock,
        secret,
        issuer,
        audience,
        config_path,
        sim,
        worker,
        metrics_base,
        shutdown: Some(tx),
        handle: Some(handle),
        _dir: dir,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

impl TestApp {
    /// A real HS256 token signed with this app's secret, naming `sub` in `sub` and `oid` (so
    /// it works whichever of the two `auth.principal_claim` names).
    pub fn token(&self, sub: &str, roles: &[&str]) -> String {
        self.token_with(json!({ "sub": sub, "oid": sub, "roles": roles }))
    }

    /// An HS256 token with `claims` plus valid `iss`, `aud`, `iat`, `nbf` and `exp` unless given.
    pub fn token_with(&self, claims: Value) -> String {
        let mut claims = claims;
        for (k, v) in [("iss", &self.issuer), ("aud", &self.audience)] {
            if claims.get(k).is_none() {
                claims[k] = json!(v);
            }
        }
        // Valid from the daemon's clock, which checks them: a test that moves it keeps its tokens fresh.
        let now = dualkey::clock::Clock::now(&self.clock).unix_ms() / 1000;
        encode(
            &Header::new(Algorithm::HS256),
            &full_claims_at(claims, now),
            &EncodingKey::from_secret(self.secret.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    pub fn requester(&self) -> String {
        self.token("alice", &[REQUESTER])
    }

    pub fn approver(&self, name: &str) -> String {
        self.token(name, &[APPROVER])
    }

    pub fn auditor(&self) -> String {
        self.token("audrey", &[AUDITOR])
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.http.post(self.url(path)).bearer_auth(token).json(&body).send().await.unwrap()
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.http.get(self.url(path)).bearer_auth(token).send().await.unwrap()
    }

    /// Requests a release for machine `n` as alice and returns its JSON.
    pub async fn create_release(&self, n: u32) -> Value {
        let r = self
            .post(
                "/api/v1/releases",
                &self.requester(),
                json!({"machine_id": machine(n), "comment": "reimaged and scanned clean"}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json().await.unwrap()
    }

    pub async fn approve(&self, id: &str, token: &str) -> Response {
        self.post(&format!("/api/v1/releases/{id}/approve"), token, json!({})).await
    }

    pub async fn release(&self, id: &str) -> Value {
        let r = self.get(&format!("/api/v1/releases/{id}"), &self.auditor()).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// All audit entries, through the API.
    pub async fn audit(&self) -> Vec<Value> {
        let r = self.get("/api/v1/audit?limit=1000", &self.auditor()).await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        body["items"].as_array().unwrap().clone()
    }

    /// Audit entries with this action.
    pub async fn audit_actions(&self, action: &str) -> Vec<Value> {
        self.audit().await.into_iter().filter(|e| e["action"] == action).collect()
    }

    /// A direct connection to the daemon's database (either backend), to look at what was
    /// stored. SQL sent through it uses `$1` placeholders, which both backends read.
    pub async fn raw_db(&self) -> sqlx::AnyPool {
        crate::backend::pool(&self.db_url).await
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        let pool = self.raw_db().await;
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    }

    /// Stops the daemon and waits for it to exit cleanly.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }
}

/// Claims with valid defaults for everything the caller did not set.
pub fn full_claims(claims: Value) -> Value {
    full_claims_at(claims, time::OffsetDateTime::now_utc().unix_timestamp())
}

/// Like [`full_claims`], issued at `now` (Unix seconds).
pub fn full_claims_at(claims: Value, now: i64) -> Value {
    let mut c = json!({ "iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 600 });
    for (k, v) in claims.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

/// An RS256 token signed with `key`, carrying `kid`.
pub fn rs256_token(key: &[u8], kid: &str, claims: Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_string());
    encode(&header, &full_claims(claims), &EncodingKey::from_rsa_pem(key).unwrap()).unwrap()
}

pub async fn error_code(r: Response) -> (StatusCode, String) {
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (status, body["error"]["code"].as_str().unwrap_or("<no code>").to_string())
}

/// A daemon whose `[mde]` points at a simulator on another loopback port, and a worker to
/// drive step by step. The background worker stays off unless `tweak` turns it on.
pub struct MdeApp {
    pub app: TestApp,
    pub sim: Arc<dualkey::mde::simulator::SimulatorHandle>,
    pub worker: dualkey::worker::Worker,
}

/// The simulator's config for tests: quick action lifecycle.
pub fn quick_simulator() -> dualkey::mde::simulator::SimulatorConfig {
    dualkey::mde::simulator::SimulatorConfig {
        pending_for: std::time::Duration::from_millis(50),
        in_progress_for: std::time::Duration::from_millis(50),
        ..Default::default()
    }
}

/// A seeded (isolated) machine id in the default simulator.
pub const SEEDED: &str = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07";
pub const SEEDED_2: &str = "7b1f4967d9728e5aa3c06a9e617a22a4a5a17378";

pub async fn spawn_with_mde(
    sim_config: dualkey::mde::simulator::SimulatorConfig,
    tweak: impl FnOnce(&mut Settings),
) -> MdeApp {
    let app = spawn_with_simulator(sim_config, tweak).await;
    let worker = app.worker.clone().expect("the daemon's [mde] points at the simulator");
    MdeApp { sim: app.sim.clone(), app, worker }
}

impl MdeApp {
    /// A client of the simulator on the test's clock, acting as someone outside dualkey would.
    pub fn direct_client(&self) -> dualkey::mde::MdeClient {
        dualkey::mde::MdeClient::new(self.sim.client_config().unwrap(), Arc::new(self.app.clock.clone())).unwrap()
    }

    /// Requests a release for `machine_id` as alice and has bob approve it; returns its id.
    pub async fn approved(&self, machine_id: &str) -> String {
        let r = self
            .app
            .post(
                "/api/v1/releases",
                &self.app.requester(),
                json!({"machine_id": machine_id, "comment": "reimaged and scanned clean"}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        assert_eq!(self.app.approve(&id, &self.app.approver("bob")).await.status(), StatusCode::OK);
        id
    }

    /// Drives the worker until the release reaches `status`, moving the clock the daemon and
    /// simulator share 20 ms between rounds, so backoffs, `Retry-After`, polls and the
    /// simulator's action lifecycle pass without real waiting (bounded: panics after 1000 rounds).
    pub async fn drive_until(&self, id: &str, status: &str) -> Value {
        for _ in 0..1000 {
            self.worker.run_until_idle().await.unwrap();
            let r = self.app.release(id).await;
            if r["status"] == status {
                return r;
            }
            self.app.clock.advance(std::time::Duration::from_millis(20));
        }
        panic!("release {id} never reached {status}: {}", self.app.release(id).await);
    }
}

/// The real `dualkey` binary, with nothing leaking in from the test's environment: no
/// `DUALKEY_*` settings, no `RUST_LOG`, no `NO_COLOR`. Each test sets what it means.
pub fn dualkey_command() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_dualkey"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("DUALKEY_") || k == "RUST_LOG" || k == "NO_COLOR") {
        c.env_remove(k);
    }
    c
}

impl MdeApp {
    /// `dualkey serve --config CONFIG` as a second process on this app's simulator, listening on
    /// `bind`, with its output discarded. It runs on the system clock.
    pub fn serve_command(&self, config: &std::path::Path, bind: &str) -> std::process::Command {
        let client = self.sim.client_config().unwrap();
        let mut cmd = dualkey_command();
        cmd.args(["serve", "--config"])
            .arg(config)
            .env("DUALKEY_SERVER__BIND", bind)
            .env("DUALKEY_MDE__API_BASE", &client.api_base)
            .env("DUALKEY_MDE__TOKEN_URL", &client.token_url)
            .env("DUALKEY_MDE__SCOPE", &client.scope)
            .env("DUALKEY_MDE__CLIENT_ID", &client.client_id)
            .env("DUALKEY_MDE__CLIENT_SECRET", dualkey::mde::simulator::DEV_CLIENT_SECRET)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd
    }
}

/// A loopback address with a port free right now, so a test knows where a process listens.
pub fn free_loopback_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

impl MdeApp {
    /// The release's status, as the API shows it.
    pub async fn status(&self, id: &str) -> String {
        self.app.release(id).await["status"].as_str().unwrap().to_string()
    }
}

/// Waits for `check` to hold, looking every few milliseconds of real time (for what another
/// process or task does; the test's clock does not move meanwhile). Panics after ~30 s.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..6000 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A child process that is killed when the test ends, even by a failed assertion.
pub struct Daemon(pub std::process::Child);

impl Daemon {
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A daemon whose console and `[auth]` trust the simulator's development identity provider
/// (`principal_claim = "oid"`, as for Entra ID), with everything else as [`spawn_with_mde`].
pub async fn spawn_console_app_with(tweak: impl FnOnce(&mut Settings)) -> MdeApp {
    spawn_console_app_on(test_simulator(), tweak).await
}

/// Like [`spawn_console_app_with`], against a simulator started from `sim_config`.
pub async fn spawn_console_app_on(
    sim_config: dualkey::mde::simulator::SimulatorConfig,
    tweak: impl FnOnce(&mut Settings),
) -> MdeApp {
    use dualkey::mde::simulator::{DEV_API_AUDIENCE, DEV_API_SCOPE, DEV_APP_CLIENT_ID};
    let clock = ManualClock::new();
    let sim = start_simulator(sim_config, &clock).await;
    let (issuer, jwks) = (sim.idp_issuer(), sim.idp_jwks_url());
    let app = spawn_on(sim.clone(), &clock, move |s| {
        let oidc =
            format!("issuer = \"{issuer}\"\nclient_id = \"{DEV_APP_CLIENT_ID}\"\napi_scope = \"{DEV_API_SCOPE}\"\n");
        s.oidc = Some(toml::from_str(&oidc).unwrap());
        s.auth.jwks_url = Some(jwks);
        s.auth.issuer = issuer;
        s.auth.audience = DEV_API_AUDIENCE.into();
        s.auth.principal_claim = "oid".into();
        tweak(s);
    })
    .await;
    let worker = app.worker.clone().expect("the daemon's [mde] points at the simulator");
    MdeApp { sim, app, worker }
}
