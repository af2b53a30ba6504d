//! Killing the daemon (SIGKILL) in the middle of a release and starting it again: exactly one
//! MDE action, however the crash fell. And the lease that makes a takeover safe: renewed while
//! a worker holds the job, so a call longer than the lease keeps its claim and a worker whose
//! claim was taken over sends nothing, while a dead worker's job is taken over within one lease.

use crate::helpers::*;
use dualkey::clock::{Clock, ManualClock, Timestamp};
use dualkey::mde::simulator::{FaultAction, RouteKind};
use dualkey::worker::Step;
use std::process::Command;
use std::time::Duration;

/// The default `mde.lease`, which every daemon here runs with unless a test says otherwise.
const LEASE: Duration = Duration::from_secs(30);

/// The real `dualkey serve` as a worker-only second process on the test app's database,
/// listening on `bind`. It runs on the system clock; the test app and the simulator run on the
/// test's clock, which is real time plus whatever the test advanced.
fn worker_process(m: &MdeApp, bind: &str) -> Command {
    let mut cmd = m.serve_command(&m.app.config_path, bind);
    cmd.env("DUALKEY_MDE__WORKER_ENABLED", "true")
        .env("DUALKEY_MDE__REQUEST_TIMEOUT", "5s")
        .env("DUALKEY_MDE__SCAN_INTERVAL", "100ms")
        .env("DUALKEY_MDE__POLL_INTERVAL", "100ms")
        .env("DUALKEY_MDE__BACKOFF_BASE", "50ms")
        .env("DUALKEY_MDE__BACKOFF_MAX", "200ms");
    cmd
}

fn start_worker_process(m: &MdeApp, bind: &str) -> Daemon {
    worker_process(m, bind).spawn().map(Daemon).unwrap()
}

/// When the lease on release `id` ends, as stored.
async fn lease_of(app: &TestApp, id: &str) -> Option<Timestamp> {
    let pool = app.raw_db().await;
    let ms: Option<i64> = sqlx::query_scalar("SELECT lease_expires_at FROM releases WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    ms.map(Timestamp::from_unix_ms)
}

/// When the (only) unisolate call reached MDE.
fn sent_at(m: &MdeApp) -> Timestamp {
    let sends: Vec<_> = m.sim.requests().into_iter().filter(|r| r.kind == RouteKind::Unisolate).collect();
    Timestamp::from(sends[0].at)
}

fn advance_to_wall(clock: &ManualClock, t: Timestamp) {
    clock.advance(t.since(clock.now()));
}

/// The lease of the process that died at `died` ends within `lease` of its death; until then
/// no worker takes the job over, and the test's clock is left just past it.
async fn lapses_within_one_lease(m: &MdeApp, id: &str, died: Timestamp, lease: Duration) {
    let expires = lease_of(&m.app, id).await.expect("the dead process's lease");
    assert!(expires <= died.plus(lease), "the lease ends at {expires}, more than {lease:?} after the death at {died}");
    let before = expires.minus(Duration::from_secs(1));
    assert!(m.app.clock.now() < before, "the test reached {before} before it could look");
    advance_to_wall(&m.app.clock, before);
    assert_eq!(m.worker.run_until_idle().await.unwrap(), 0, "a live lease was taken over");
    assert_eq!(m.status(id).await, "dispatching");
    advance_to_wall(&m.app.clock, expires.plus(Duration::from_millis(100)));
}

/// Kills the worker process once MDE has the request (`fault` decides whether MDE acted on it
/// before the kill), checks that its lease (the default, 30 s from the claim's confirmation
/// just before the send) holds until 30 s after its death at most and not a second less, and
/// has another worker on the same database take the job over: the release must end with
/// exactly one action.
async fn crash_and_recover(fault: FaultAction) -> MdeApp {
    let m = spawn_with_mde(quick_simulator(), |_| {}).await;
    m.sim.inject(RouteKind::Unisolate, fault, 1);
    let mut first = start_worker_process(&m, "127.0.0.1:0");
    let id = m.approved(SEEDED).await;
    eventually("the unisolate call to reach MDE", async || m.sim.count(RouteKind::Unisolate) == 1).await;
    first.kill();
    let died = m.app.clock.now();
    assert_eq!(m.status(&id).await, "dispatching", "the crash left the send unrecorded");
    let expires = lease_of(&m.app, &id).await.unwrap();
    assert!(expires.plus(Duration::from_secs(1)) > sent_at(&m).plus(LEASE), "a lease of 30 s by default");

    lapses_within_one_lease(&m, &id, died, LEASE).await;
    m.drive_until(&id, "succeeded").await;

    assert_eq!(m.sim.unisolate_count(SEEDED), 1, "exactly one MDE action for the release");
    let report: serde_json::Value = m.app.get("/api/v1/audit/verify", &m.app.auditor()).await.json().await.unwrap();
    assert_eq!(report["ok"], true);
    let claims = m.app.audit_actions("dispatch_claimed").await;
    assert_eq!(claims.len(), 2, "claimed again after the lease of the dead process expired");
    m
}

#[tokio::test]
async fn a_daemon_killed_after_mde_acted_but_before_recording_adopts_the_action_on_restart() {
    let m = crash_and_recover(FaultAction::ProcessThenDelay(Duration::from_secs(30))).await;
    assert_eq!(m.sim.count(RouteKind::Unisolate), 1, "the restart listed and adopted instead of sending again");
    let adopted = m.app.audit_actions("mde_action_adopted").await;
    assert_eq!(adopted.len(), 1);
    assert_eq!(adopted[0]["details"]["found_by"], "list_before_resend");
}

#[tokio::test]
async fn a_daemon_killed_while_mde_was_still_receiving_the_call_sends_exactly_once_after_restart() {
    // MDE holds the call before acting on it; the kill drops the connection first.
    let m = crash_and_recover(FaultAction::Delay(Duration::from_secs(30))).await;
    let ours = m
        .sim
        .actions_for(SEEDED)
        .into_iter()
        .filter(|a| a.action_type.as_ref().is_some_and(|t| t.as_str() == "Unisolate"))
        .count();
    assert_eq!(ours, 1);
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_call_finish_and_record_before_exiting() {
    let m = spawn_with_mde(quick_simulator(), |_| {}).await;
    // The simulator holds the call until the test's clock moves past the delay.
    m.sim.inject(RouteKind::Unisolate, FaultAction::Delay(Duration::from_secs(3)), 1);
    let bind = free_loopback_addr();
    let mut daemon = start_worker_process(&m, &bind);
    let id = m.approved(SEEDED).await;
    eventually("the unisolate call to reach MDE", async || m.sim.count(RouteKind::Unisolate) == 1).await;
    let term = Command::new("kill").args(["-TERM", &daemon.0.id().to_string()]).status().unwrap();
    assert!(term.success());
    // Shutdown has begun once the process stops accepting connections; only then does MDE answer.
    eventually("the process to stop accepting connections", async || std::net::TcpStream::connect(&bind).is_err())
        .await;
    assert_eq!(m.app.release(&id).await["status"], "dispatching", "the call is still in flight");
    m.app.clock.advance(Duration::from_secs(3));
    let exit = tokio::task::spawn_blocking(move || daemon.0.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "clean exit after SIGTERM: {exit:?}");
    let r = m.app.release(&id).await;
    assert_eq!(r["status"], "dispatched", "the in-flight call finished and was recorded: {r}");
    assert_eq!(m.sim.unisolate_count(SEEDED), 1);
}

#[tokio::test]
async fn a_worker_process_renews_its_lease_during_a_slow_call_and_is_taken_over_one_lease_after_its_last_beat() {
    let m = spawn_with_mde(quick_simulator(), |_| {}).await;
    // MDE acts at once and holds its answer; the process's lease is shorter than its 5 s
    // request_timeout, and it beats every second.
    m.sim.inject(RouteKind::Unisolate, FaultAction::ProcessThenDelay(Duration::from_secs(60)), 1);
    let lease = Duration::from_secs(3);
    let mut process = worker_process(&m, "127.0.0.1:0").env("DUALKEY_MDE__LEASE", "3s").spawn().map(Daemon).unwrap();
    let id = m.approved(SEEDED).await;
    eventually("the unisolate call to reach MDE", async || m.sim.count(RouteKind::Unisolate) == 1).await;
    let sent = sent_at(&m);
    eventually("a renewal while the call is in flight", async || lease_of(&m.app, &id).await > Some(sent.plus(lease)))
        .await;
    process.kill();
    let died = m.app.clock.now();

    lapses_within_one_lease(&m, &id, died, lease).await;
    m.drive_until(&id, "succeeded").await;
    assert_eq!(m.sim.count(RouteKind::Unisolate), 1, "the takeover listed and adopted instead of sending again");
    assert_eq!(m.sim.unisolate_count(SEEDED), 1);
    assert_eq!(m.app.audit_actions("mde_action_adopted").await.len(), 1);
}

/// Another daemon on the test app's database, simulator and clock, its worker driven by the test.
async fn second_daemon(m: &MdeApp) -> TestApp {
    let db_url = m.app.db_url.clone();
    spawn_on(m.sim.clone(), &m.app.clock, move |s| s.database.url = db_url).await
}

#[tokio::test]
async fn a_call_that_takes_three_leases_keeps_its_claim_and_a_second_worker_leaves_it_alone() {
    let m = spawn_with_mde(quick_simulator(), |_| {}).await;
    let other = second_daemon(&m).await;
    let other_worker = other.worker.clone().unwrap();
    m.sim.inject(RouteKind::Unisolate, FaultAction::Delay(3 * LEASE + LEASE / 6), 1);
    let id = m.approved(SEEDED).await;
    let send = tokio::spawn({
        let worker = m.worker.clone();
        async move { worker.run_until_idle().await }
    });
    eventually("the unisolate call to reach MDE", async || m.sim.count(RouteKind::Unisolate) == 1).await;
    let first = lease_of(&m.app, &id).await.unwrap();
    let mut held = first;
    for _ in 0..9 {
        m.app.clock.advance(LEASE / 3);
        eventually("the heartbeat to renew the lease", async || lease_of(&m.app, &id).await > Some(held)).await;
        held = lease_of(&m.app, &id).await.unwrap();
        assert_eq!(other_worker.run_until_idle().await.unwrap(), 0, "a renewed claim was taken over");
    }
    assert!(held >= first.plus(3 * LEASE), "renewed for three leases: {first} -> {held}");
    assert_eq!(m.status(&id).await, "dispatching", "the call is still in flight");

    m.app.clock.advance(LEASE / 6);
    let done = tokio::time::timeout(Duration::from_secs(10), send).await.expect("MDE answered").unwrap();
    assert!(done.unwrap() >= 1);
    m.drive_until(&id, "succeeded").await;
    assert_eq!(m.sim.count(RouteKind::Unisolate), 1);
    assert_eq!(m.sim.unisolate_count(SEEDED), 1);
    assert_eq!(m.app.audit_actions("dispatch_claimed").await.len(), 1, "one claim from the send to its record");
    assert_eq!(m.app.audit_actions("unisolate_accepted").await.len(), 1);
}

#[tokio::test]
async fn a_worker_whose_claim_was_taken_over_while_it_waited_sends_nothing() {
    let m = spawn_with_mde(quick_simulator(), |_| {}).await;
    let other = second_daemon(&m).await;
    // MDE refuses a first release for ten minutes: this worker's unisolate budget is blocked as long.
    m.sim.inject(RouteKind::Unisolate, FaultAction::too_many_requests(600), 1);
    let refused = m.approved(SEEDED).await;
    assert_eq!(m.worker.run_until_idle().await.unwrap(), 1);
    assert_eq!(m.status(&refused).await, "approved", "back in the queue for ten minutes");
    let id = m.approved(SEEDED_2).await;
    let now = m.app.clock.monotonic();
    let waiting = tokio::spawn({
        let worker = m.worker.clone();
        async move { worker.step().await }
    });
    let budget = m.app.clock.wait_for_sleeper_matching(|d| d > now + Duration::from_secs(500));
    tokio::time::timeout(Duration::from_secs(10), budget).await.expect("the worker waits for the unisolate budget");
    assert_eq!(m.status(&id).await, "dispatching", "claimed by the waiting worker");

    // Its lease lapses (as if its heartbeat had stalled) and the other worker takes the job over.
    // The 429's pause holds for every replica, so the other worker waits for it too.
    let pool = m.app.raw_db().await;
    sqlx::query("UPDATE releases SET lease_expires_at = 0 WHERE id = $1").bind(&id).execute(&pool).await.unwrap();
    pool.close().await;
    let taking_over = tokio::spawn({
        let worker = other.worker.clone().unwrap();
        async move { worker.step().await }
    });
    eventually("the other worker to claim the job", async || {
        let claims = m.app.audit_actions("dispatch_claimed").await;
        claims.iter().filter(|e| e["release_id"] == id.as_str()).count() == 2
    })
    .await;

    // At its next beat the first worker finds the job gone and stops waiting, without sending.
    m.app.clock.advance(LEASE / 3);
    let step = tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("the wait ends").unwrap();
    assert_eq!(step.unwrap(), Step::Worked);
    assert_eq!(m.sim.count(RouteKind::Unisolate), 1, "nobody sent during the pause");
    // Once the pause is over, the worker that took the job over sends it.
    m.app.clock.advance(Duration::from_secs(600));
    let took = tokio::time::timeout(Duration::from_secs(10), taking_over).await.expect("the send goes out").unwrap();
    assert_eq!(took.unwrap(), Step::Worked);
    assert_ne!(m.status(&id).await, "dispatching", "sent by the other worker");
    // The other replica stops (giving up its job leases), so this one's scan follows the sends.
    other.stop().await;
    m.drive_until(&refused, "succeeded").await;
    let sends = m.sim.requests().into_iter().filter(|r| r.kind == RouteKind::Unisolate && r.path.contains(SEEDED_2));
    assert_eq!(sends.count(), 1, "only the worker that took the job over sent it");
    assert_eq!(m.sim.unisolate_count(SEEDED_2), 1);
    let claims = m.app.audit_actions("dispatch_claimed").await;
    assert_eq!(claims.iter().filter(|e| e["release_id"] == id.as_str()).count(), 2);
}
