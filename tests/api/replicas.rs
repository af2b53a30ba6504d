//! Several replicas on one database: each periodic job runs on one of them and moves when it
//! stops; a replica that loses its PostgreSQL server answers 503 and recovers by itself.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

async fn readyz(app: &TestApp) -> (StatusCode, Value) {
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

#[tokio::test]
async fn each_periodic_job_has_one_leader_among_the_replicas_and_moves_when_the_leader_stops() {
    let clock = dualkey::clock::ManualClock::new();
    let sim = start_simulator(test_simulator(), &clock).await;
    // A SQLite file outlives the first app, which is stopped below (its own directory goes with it).
    let db_dir = tempfile::tempdir().unwrap();
    let first = match crate::backend::is_postgres() {
        true => spawn_on(sim.clone(), &clock, |_| {}).await,
        false => spawn_on_in(sim.clone(), &clock, Some(db_dir.path()), |_| {}).await,
    };
    let db_url = first.db_url.clone();
    let second = spawn_on(sim.clone(), &clock, move |s| s.database.url = db_url).await;

    let (_, one) = readyz(&first).await;
    let (_, two) = readyz(&second).await;
    assert_eq!(one["jobs"], json!({"expiry": "leader", "bypass_scan": "leader"}), "{one}");
    assert_eq!(two["jobs"], json!({"expiry": "follower", "bypass_scan": "follower"}), "{two}");

    // The leader stops cleanly and gives its leases up: the next round of the other takes them.
    first.stop().await;
    eventually("the second replica to lead every job", async || {
        clock.advance(Duration::from_secs(1));
        readyz(&second).await.1["jobs"] == json!({"expiry": "leader", "bypass_scan": "leader"})
    })
    .await;

    // A pending release past its time is expired by the new leader's sweep.
    let r = second
        .post(
            "/api/v1/releases",
            &second.requester(),
            json!({"machine_id": machine(1), "comment": "reimaged and clean"}),
        )
        .await;
    let (status, made): (StatusCode, Value) = (r.status(), r.json().await.unwrap());
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = made["id"].as_str().unwrap().to_string();
    clock.advance(Duration::from_secs(25 * 3600));
    eventually("the sweep of the new leader to expire the release", async || {
        clock.advance(Duration::from_secs(1));
        second.release(&id).await["status"] == "expired"
    })
    .await;
}

/// A loopback TCP proxy in front of the PostgreSQL server, which the test can cut (every
/// connection reset, new ones closed at once) and restore.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    open: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let open = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (up2, open2) = (up.clone(), open.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                open2.lock().unwrap().push(task.abort_handle());
            }
        });
        Self { port, up, open }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for task in self.open.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_replica_that_loses_its_postgresql_server_answers_503_and_recovers_by_itself_losing_nothing() {
    if !crate::backend::is_postgres() {
        return; // SQLite has no server to lose; tests/api/storage.rs covers its disk failing.
    }
    let run = crate::backend::postgres().unwrap();
    let direct = crate::backend::fresh_postgres(&run).await;
    let server = reqwest::Url::parse(&direct).unwrap();
    let proxy = Proxy::start(format!("{}:{}", server.host_str().unwrap(), server.port().unwrap_or(5432))).await;
    let mut proxied = server.clone();
    proxied.set_port(Some(proxy.port)).unwrap();
    let proxied = proxied.to_string();
    let app = spawn_app_with(move |s| {
        s.database.url = proxied;
        s.database.busy_timeout = "300ms".parse().unwrap();
    })
    .await;
    let kept = app.create_release(1).await["id"].as_str().unwrap().to_string();
    assert_eq!(readyz(&app).await.0, StatusCode::OK);

    proxy.cut();
    // The first probe after the loss already says so (the pool tests connections before use).
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["database"], "unreachable", "{body}");
    let r = app
        .post("/api/v1/releases", &app.requester(), json!({"machine_id": machine(2), "comment": "reimaged and clean"}))
        .await;
    assert_eq!(error_code(r).await, (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable".into()));

    proxy.restore();
    eventually("the replica to be ready again by itself", async || {
        app.clock.advance(Duration::from_secs(2)); // the storage probe's interval
        readyz(&app).await.0 == StatusCode::OK
    })
    .await;
    let again = app.create_release(3).await;
    assert_eq!(again["status"], "pending", "{again}");
    assert_eq!(app.release(&kept).await["status"], "pending", "the acknowledged release is still there");
    let listed: Value = app.get("/api/v1/releases", &app.auditor()).await.json().await.unwrap();
    let ids: Vec<&str> = listed["items"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [again["id"].as_str().unwrap(), kept.as_str()], "the refused create stored nothing: {listed}");
}

#[tokio::test]
async fn an_approval_on_one_replica_wakes_the_worker_of_another_at_once() {
    if !crate::backend::is_postgres() {
        return; // LISTEN/NOTIFY is PostgreSQL's; one SQLite process wakes its own worker.
    }
    let clock = dualkey::clock::ManualClock::new();
    let sim = start_simulator(test_simulator(), &clock).await;
    let api = spawn_on(sim.clone(), &clock, |_| {}).await;
    let db_url = api.db_url.clone();
    // The other replica's worker runs in the background with nothing due for an hour, so only
    // the commit's NOTIFY can wake it before the wait below gives up.
    let _worker = spawn_on(sim.clone(), &clock, move |s| {
        s.database.url = db_url;
        s.mde.worker_enabled = true;
        s.mde.poll_interval = "1h".parse().unwrap();
        s.mde.scan_interval = "1h".parse().unwrap();
        s.mde.bypass_scan_interval = "1h".parse().unwrap();
    })
    .await;
    let made = api.create_release(1).await;
    let id = made["id"].as_str().unwrap().to_string();
    assert_eq!(api.approve(&id, &api.approver("bob")).await.status(), StatusCode::OK);
    eventually("the other replica's worker to send the release", async || {
        sim.count(dualkey::mde::simulator::RouteKind::Unisolate) == 1
    })
    .await;
}
