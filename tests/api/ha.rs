//! Three `dualkey serve` processes on one database behind the test's own round-robin client:
//! 500 releases created and approved across the replicas, with racing creates for one device
//! and racing decisions on one release, and one replica killed with SIGKILL while it sends.
//! On PostgreSQL (`DUALKEY_TEST_POSTGRES`) this is the high-availability deployment; on SQLite
//! the same three processes share one file (and start together, as the migrations must allow).

use crate::helpers::*;
use dualkey::mde::ActionType;
use dualkey::mde::simulator::{RouteKind, SeedMachine, Simulator, SimulatorConfig};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

const RELEASES: usize = 500;
/// Releases whose device gets two creates at once, and whose decision is raced (approve on one
/// replica, reject on another).
const RACED: usize = 50;
/// The MDE budget per API per minute, on the simulator and in every daemon.
const BUDGET: u32 = 1000;

fn device(n: usize) -> String {
    format!("{n:08x}{}", "ef".repeat(16))
}

struct Replicas {
    http: reqwest::Client,
    addrs: Vec<String>,
    alive: Vec<bool>,
    next: std::sync::atomic::AtomicUsize,
    secret: String,
}

impl Replicas {
    /// The next live replica, round-robin.
    fn pick(&self) -> &str {
        loop {
            let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.addrs.len();
            if self.alive[i] {
                return &self.addrs[i];
            }
        }
    }

    fn token(&self, sub: &str, role: &str) -> String {
        let claims = full_claims(json!({"sub": sub, "oid": sub, "roles": [role]}));
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(self.secret.as_bytes()).unwrap())
            .unwrap()
    }

    async fn post(&self, at: &str, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        let r = self.http.post(format!("http://{at}{path}")).bearer_auth(token).json(&body).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

async fn count(pool: &sqlx::AnyPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_release_500_devices_once_each_through_races_and_a_sigkill() {
    let sim = Simulator::start(SimulatorConfig {
        machines: (0..RELEASES).map(|n| SeedMachine::isolated(&device(n), "ha.contoso.com")).collect(),
        pending_for: Duration::from_millis(200),
        in_progress_for: Duration::from_millis(300),
        rate_per_minute: BUDGET,
        rate_per_hour: BUDGET * 15,
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let client = sim.client_config().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db_url = crate::backend::fresh_url(dir.path()).await;
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let config = dir.path().join("ha.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{db_url}\"\n[auth]\nhs256_secret = \"{secret}\"\nissuer = \"{ISSUER}\"\n\
             audience = \"{AUDIENCE}\"\n[mde]\napi_base = \"{}\"\ntoken_url = \"{}\"\nscope = \"{}\"\n\
             client_id = \"{}\"\nclient_secret = \"{}\"\nworker_enabled = true\npoll_interval = \"250ms\"\n\
             lease = \"3s\"\nrate_per_minute = {BUDGET}\nrate_per_hour = {}\nbackoff_base = \"50ms\"\n\
             backoff_max = \"500ms\"\n",
            client.api_base,
            client.token_url,
            client.scope,
            client.client_id,
            dualkey::mde::simulator::DEV_CLIENT_SECRET,
            BUDGET * 15
        ),
    )
    .unwrap();
    // Three processes started at the same moment on one empty database: each migrates.
    let addrs: Vec<String> = (0..3).map(|_| free_loopback_addr()).collect();
    let mut daemons: Vec<Daemon> = addrs
        .iter()
        .map(|addr| {
            let mut cmd = dualkey_command();
            cmd.args(["serve", "--config"]).arg(&config).env("DUALKEY_SERVER__BIND", addr);
            cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
            Daemon(cmd.spawn().unwrap())
        })
        .collect();
    let http = reqwest::Client::new();
    for addr in &addrs {
        let url = format!("http://{addr}/readyz");
        eventually(&format!("replica {addr} to be ready"), async || {
            http.get(&url).send().await.is_ok_and(|r| r.status() == StatusCode::OK)
        })
        .await;
    }
    let mut r = Replicas { http, addrs: addrs.clone(), alive: vec![true; 3], next: Default::default(), secret };
    let (alice, bob, carol) = (r.token("alice", REQUESTER), r.token("bob", APPROVER), r.token("carol", APPROVER));
    let comment = "reimaged and scanned clean after the outbreak";

    // Racing creates: two replicas asked for the same device at once; exactly one wins.
    let mut ids = Vec::new();
    for n in 0..RACED {
        let body = json!({"machine_id": device(n), "comment": comment});
        let (a, b) = tokio::join!(
            r.post(&addrs[n % 3], "/api/v1/releases", &alice, body.clone()),
            r.post(&addrs[(n + 1) % 3], "/api/v1/releases", &alice, body)
        );
        let mut codes = [a.0, b.0];
        codes.sort();
        assert_eq!(codes, [StatusCode::CREATED, StatusCode::CONFLICT], "{a:?} {b:?}");
        let (won, lost) = if a.0 == StatusCode::CREATED { (a.1, b.1) } else { (b.1, a.1) };
        assert_eq!(lost["error"]["code"], "release_already_open", "{lost}");
        ids.push(won["id"].as_str().unwrap().to_string());
    }
    // Racing decisions: bob approves on one replica while carol rejects on another.
    let mut rejected = std::collections::BTreeSet::new();
    for (n, id) in ids.iter().enumerate() {
        let (approve, reject) = (format!("/api/v1/releases/{id}/approve"), format!("/api/v1/releases/{id}/reject"));
        let (a, b) = tokio::join!(
            r.post(&addrs[n % 3], &approve, &bob, json!({})),
            r.post(&addrs[(n + 2) % 3], &reject, &carol, json!({"comment": "not until the forensics are in"}))
        );
        let mut codes = [a.0, b.0];
        codes.sort();
        assert_eq!(codes, [StatusCode::OK, StatusCode::CONFLICT], "one decision wins: {a:?} {b:?}");
        if b.0 == StatusCode::OK {
            rejected.insert(id.clone());
        }
    }
    // The rest, round-robin: created on one replica, approved on the next.
    let kill_after = RACED + (RELEASES - RACED) / 2;
    let pool = crate::backend::pool(&db_url).await;
    for n in RACED..RELEASES {
        let (status, made) =
            r.post(r.pick(), "/api/v1/releases", &alice, json!({"machine_id": device(n), "comment": comment})).await;
        assert_eq!(status, StatusCode::CREATED, "{made}");
        let id = made["id"].as_str().unwrap().to_string();
        let (status, approved) = r.post(r.pick(), &format!("/api/v1/releases/{id}/approve"), &bob, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{approved}");
        ids.push(id);
        if n == kill_after {
            // One replica dies while the sends are under way; what it claimed moves to the others.
            eventually("sends to be under way", async || {
                count(&pool, "SELECT COUNT(*) FROM releases WHERE status IN ('dispatched', 'succeeded')").await > 20
            })
            .await;
            // Best while it holds a send's claim (its worker is `worker-<pid>-...`).
            let holding = format!("worker-{}-%", daemons[2].0.id());
            let mut held = 0;
            for _ in 0..400 {
                held = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM releases WHERE lease_owner LIKE $1")
                    .bind(&holding)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                if held > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            daemons[2].kill();
            eprintln!("killed replica 2 holding {held} claim(s)");
            r.alive[2] = false;
        }
    }

    eventually("every release to be final", async || {
        count(&pool, "SELECT COUNT(*) FROM releases WHERE status NOT IN ('succeeded', 'rejected')").await == 0
    })
    .await;

    // Exactly one MDE action per released device, none for a rejected one.
    let releases: Vec<(String, String, String)> =
        sqlx::query_as("SELECT id, machine_id, status FROM releases").fetch_all(&pool).await.unwrap();
    assert_eq!(releases.len(), RELEASES);
    for (id, machine_id, status) in &releases {
        let unisolates = sim.actions_for(machine_id).iter().filter(|a| a.is(&ActionType::Unisolate)).count();
        let expected = if rejected.contains(id) { ("rejected", 0) } else { ("succeeded", 1) };
        assert_eq!((status.as_str(), unisolates), expected, "release {id} of {machine_id}");
    }
    // No 429, and never more calls of one API in a minute than the budget.
    assert_eq!(sim.throttled(), 0, "the simulator throttled nobody");
    let mut by_kind: BTreeMap<RouteKind, Vec<dualkey::clock::Monotonic>> = BTreeMap::new();
    for seen in sim.requests().into_iter().filter(|s| s.kind != RouteKind::Token) {
        by_kind.entry(seen.kind).or_default().push(seen.instant);
    }
    for (kind, times) in &by_kind {
        let busiest = times
            .iter()
            .enumerate()
            .map(|(i, t)| times[i..].iter().take_while(|u| u.saturating_since(*t) < Duration::from_secs(60)).count())
            .max()
            .unwrap_or(0);
        assert!(busiest <= BUDGET as usize, "{kind:?}: {busiest} calls in one minute");
    }
    // One unbroken audit log: no gap in seq, and the chain verifies.
    let (entries, last): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), MAX(seq) FROM audit_log").fetch_one(&pool).await.unwrap();
    assert_eq!(entries, last, "no gap in the audit log's seq");
    let out = dualkey_command().args(["audit", "verify", "--config"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    drop(daemons);
}
