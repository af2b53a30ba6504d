//! Killing the daemon (SIGKILL) in the middle of a release and starting it again: exactly one
//! MDE action, however the crash fell.

use crate::helpers::*;
use dualkey::mde::simulator::{FaultAction, RouteKind};
use std::process::Command;
use std::time::Duration;

/// The real `dualkey serve` as a worker-only second process on the test app's database,
/// listening on `bind`. It runs on the system clock; the test app and the simulator run on the
/// test's clock, which is real time plus whatever the test advanced.
fn start_worker_process(m: &MdeApp, bind: &str) -> Daemon {
    m.serve_command(&m.app.config_path, bind)
        .env("DUALKEY_MDE__WORKER_ENABLED", "true")
        .env("DUALKEY_MDE__REQUEST_TIMEOUT", "5s")
        .env("DUALKEY_MDE__LEASE", LEASE)
        .env("DUALKEY_MDE__SCAN_INTERVAL", "100ms")
        .env("DUALKEY_MDE__POLL_INTERVAL", "100ms")
        .env("DUALKEY_MDE__BACKOFF_BASE", "50ms")
        .env("DUALKEY_MDE__BACKOFF_MAX", "200ms")
        .spawn()
        .map(Daemon)
        .unwrap()
}

/// The lease the worker process takes on a claim.
const LEASE: &str = "6s";

/// Kills the worker process once MDE has the request (`fault` decides whether MDE acted on it
/// before the kill), then lets the dead process's lease run out on the test's clock and has
/// another worker on the same database take the job over: the release must end with exactly
/// one action.
async fn crash_and_recover(fault: FaultAction) -> MdeApp {
    let m = spawn_with_mde(quick_simulator(), |_| {}).await;
    m.sim.inject(RouteKind::Unisolate, fault, 1);
    let mut first = start_worker_process(&m, "127.0.0.1:0");
    let id = m.approved(SEEDED).await;
    eventually("the unisolate call to reach MDE", async || m.sim.count(RouteKind::Unisolate) == 1).await;
    first.kill();
    assert_eq!(m.status(&id).await, "dispatching", "the crash left the send unrecorded");

    // Before the lease runs out, nobody may take the job over.
    assert_eq!(m.worker.run_until_idle().await.unwrap(), 0, "a live lease was taken over");
    m.app.clock.advance(humantime::parse_duration(LEASE).unwrap() + Duration::from_millis(100));
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
