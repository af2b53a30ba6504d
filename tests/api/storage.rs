//! The daemon on a small filesystem that fills up and is freed again: 503 `storage_unavailable`
//! and not ready while writes fail, writes and readiness back without a restart once space is
//! free, and nothing lost or half-written. Needs root (to mount a tmpfs); skipped otherwise.

use crate::helpers::*;
use dualkey::clock::Clock;
use dualkey::mde::simulator::{FaultAction, RouteKind};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The daemon's storage probe interval (`service::storage::PROBE_INTERVAL`, not exported).
const PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// A tmpfs of a few MiB on a temporary directory, unmounted when dropped (a failed test too).
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    /// Mounts it, or says why it cannot (not root, no `mount`): the caller skips the test.
    fn mount(test: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"]).arg(dir.path()).output();
        match out {
            Ok(out) if out.status.success() => Some(Self { dir }),
            Ok(out) => {
                skip(test, &String::from_utf8_lossy(&out.stderr).split_whitespace().collect::<Vec<_>>().join(" "))
            }
            Err(e) => skip(test, &e.to_string()),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn filler(&self) -> PathBuf {
        self.path().join("filler")
    }

    /// Writes a file until the filesystem answers ENOSPC.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.filler()).unwrap();
        let chunk = vec![0xa5u8; 64 * 1024];
        loop {
            match f.write(&chunk) {
                Ok(0) => panic!("a write of nothing before the filesystem was full"),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => return,
                Err(e) => panic!("filling the filesystem: {e}"),
            }
        }
    }

    fn free(&self) {
        std::fs::remove_file(self.filler()).unwrap();
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        // Lazy, so a daemon a failed test left running cannot keep the mount.
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Between the send duty's first backoff (1 s) and the storage probe's interval (2 s).
const HALF_A_PROBE: Duration = Duration::from_millis(1500);

/// Only bounds a hang; every wait below ends long before it.
const HANG_GUARD: Duration = Duration::from_secs(10);

fn skip<T>(test: &str, why: &str) -> Option<T> {
    eprintln!("SKIPPED {test}: it mounts a small tmpfs to fill, which needs root ({why})");
    None
}

/// A daemon whose SQLite file lives on `fs`. The WAL is checkpointed and truncated first, so
/// every later commit has to grow it: SQLite otherwise reuses WAL space after a checkpoint, and
/// a full disk would fail some writes and not others.
async fn app_on(fs: &SmallFs, sim: dualkey::mde::simulator::SimulatorConfig) -> TestApp {
    let clock = dualkey::clock::ManualClock::new();
    let sim = start_simulator(sim, &clock).await;
    spawn_on_in(sim, &clock, Some(fs.path()), |_| {}).await
}

async fn truncate_wal(app: &TestApp) {
    let pool = app.raw_db().await;
    let (busy, _, _): (i64, i64, i64) =
        sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&pool).await.unwrap();
    pool.close().await;
    assert_eq!(busy, 0, "the checkpoint ran to the end");
}

async fn readyz(app: &TestApp) -> (StatusCode, Value) {
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

fn request(n: u32) -> Value {
    json!({"machine_id": machine(n), "comment": "reimaged and scanned clean"})
}

#[tokio::test]
async fn a_full_disk_answers_503_and_not_ready_then_recovers_without_a_restart_losing_nothing() {
    let Some(fs) =
        SmallFs::mount("a_full_disk_answers_503_and_not_ready_then_recovers_without_a_restart_losing_nothing")
    else {
        return;
    };
    let app = app_on(&fs, test_simulator()).await;
    let mut before = Vec::new();
    for n in 0..3 {
        before.push(app.create_release(n).await["id"].as_str().unwrap().to_string());
    }
    assert_eq!(app.approve(&before[0], &app.approver("bob")).await.status(), StatusCode::OK);
    let (status, body) = readyz(&app).await;
    assert_eq!((status, &body["status"], &body["storage"]), (StatusCode::OK, &json!("ready"), &json!("writable")));
    truncate_wal(&app).await;

    fs.fill();
    let r = app.post("/api/v1/releases", &app.requester(), request(10)).await;
    assert_eq!(error_code(r).await, (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable".into()));
    let r = app.approve(&before[1], &app.approver("bob")).await;
    assert_eq!(error_code(r).await, (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable".into()));
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        (&body["status"], &body["storage"], &body["database"]),
        (&json!("not_ready"), &json!("failing"), &json!("ok"))
    );
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(app.release(&before[1]).await["status"], "pending", "reads still work");
    // The storage probe runs on the clock; while the disk is full it fails and readiness stays off.
    // (The sweeper sleeps 30 s, the worker is off: the probe is the only sleeper due this soon.)
    let probe = PROBE_INTERVAL;
    let asleep = app.clock.monotonic();
    let sleeping = app.clock.wait_for_sleeper_matching(|d| d > asleep && d <= asleep + probe);
    tokio::time::timeout(HANG_GUARD, sleeping).await.expect("the probe sleeps on the clock");
    app.clock.advance(probe);
    let probed = app.clock.monotonic();
    let again = app.clock.wait_for_sleeper_matching(|d| d > probed + probe / 2 && d <= probed + 2 * probe);
    tokio::time::timeout(HANG_GUARD, again).await.expect("the probe ran and sleeps again");
    assert_eq!(readyz(&app).await.0, StatusCode::SERVICE_UNAVAILABLE, "a probe on a full disk failed");

    fs.free();
    // Nobody writes: the probe finds the space on its next round.
    let mut ready = false;
    for _ in 0..200 {
        app.clock.advance(probe);
        if readyz(&app).await.0 == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(ready, "readiness came back without a restart");
    let r = app.post("/api/v1/releases", &app.requester(), request(10)).await;
    assert_eq!(r.status(), StatusCode::CREATED, "writes work again");
    assert_eq!(app.approve(&before[1], &app.approver("bob")).await.status(), StatusCode::OK);

    let statuses: Vec<Value> = {
        let mut s = Vec::new();
        for id in &before {
            s.push(app.release(id).await["status"].clone());
        }
        s
    };
    assert_eq!(statuses, ["approved", "approved", "pending"], "everything accepted before the fill is there");
    assert_eq!(app.count("SELECT COUNT(*) FROM releases").await, 4, "the refused request left no row");
    assert_eq!(app.count("SELECT COUNT(*) FROM approvals").await, 2, "the refused approval left no row");
    assert_eq!(app.audit_actions("release_requested").await.len(), 4);
    assert_eq!(app.audit_actions("approval_recorded").await.len(), 2);
    let report: Value = app.get("/api/v1/audit/verify", &app.auditor()).await.json().await.unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["entries"], app.audit().await.len());
    app.stop().await;
}

#[tokio::test]
async fn a_send_whose_answer_could_not_be_stored_is_adopted_once_the_disk_is_freed() {
    let Some(fs) = SmallFs::mount("a_send_whose_answer_could_not_be_stored_is_adopted_once_the_disk_is_freed") else {
        return;
    };
    let app = app_on(&fs, quick_simulator()).await;
    let m = MdeApp { sim: app.sim.clone(), worker: app.worker.clone().unwrap(), app };
    let id = m.approved(SEEDED).await;
    truncate_wal(&m.app).await;
    // MDE creates the action at once and answers ten seconds later, on the test's clock.
    m.sim.inject(RouteKind::Unisolate, FaultAction::ProcessThenDelay(Duration::from_secs(10)), 1);
    let send = tokio::spawn({
        let worker = m.worker.clone();
        async move { worker.run_until_idle().await }
    });
    for _ in 0..1000 {
        if m.sim.unisolate_count(SEEDED) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(m.sim.unisolate_count(SEEDED), 1, "MDE acted");

    fs.fill();
    m.app.clock.advance(Duration::from_secs(10));
    let failed = tokio::time::timeout(Duration::from_secs(10), send).await.unwrap().unwrap();
    let e = failed.expect_err("recording MDE's answer fails on a full disk");
    assert!(format!("{e:#}").contains("database or disk is full"), "a storage error: {e:#}");
    assert_eq!(m.app.release(&id).await["status"], "dispatching", "claimed before the fill; the answer unstored");
    assert_eq!(readyz(&m.app).await.0, StatusCode::SERVICE_UNAVAILABLE);

    fs.free();
    // The claim's lease runs out; the next claim lists MDE's actions before sending again.
    m.app.clock.advance(Duration::from_secs(301));
    let done = m.drive_until(&id, "succeeded").await;
    assert_eq!(readyz(&m.app).await.0, StatusCode::OK, "the worker's writes turned readiness back on");
    assert_eq!(m.sim.unisolate_count(SEEDED), 1, "exactly one MDE action");
    assert_eq!(m.sim.count(RouteKind::Unisolate), 1, "never sent twice");
    let adopted = m.app.audit_actions("mde_action_adopted").await;
    assert_eq!(adopted.len(), 1);
    assert_eq!(adopted[0]["details"]["mde_action_id"], done["mde_action_id"]);
    assert!(m.app.audit_actions("unisolate_accepted").await.is_empty(), "the lost answer left no entry");
    let report: Value = m.app.get("/api/v1/audit/verify", &m.app.auditor()).await.json().await.unwrap();
    assert_eq!(report["ok"], true, "{report}");
    m.app.stop().await;
}

#[tokio::test]
async fn the_worker_waits_on_the_clock_while_storage_fails_and_sends_once_it_is_freed() {
    let Some(fs) = SmallFs::mount("the_worker_waits_on_the_clock_while_storage_fails_and_sends_once_it_is_freed")
    else {
        return;
    };
    let clock = dualkey::clock::ManualClock::new();
    let sim = start_simulator(quick_simulator(), &clock).await;
    // Idle duties wake only for the scan, an hour away: the sleepers below are the backoff's.
    let app = spawn_on_in(sim, &clock, Some(fs.path()), |s| s.mde.scan_interval = "1h".parse().unwrap()).await;
    let m = MdeApp { sim: app.sim.clone(), worker: app.worker.clone().unwrap(), app };
    let id = m.approved(SEEDED).await;
    truncate_wal(&m.app).await;
    fs.fill();
    let stop = tokio_util::sync::CancellationToken::new();
    let _worker = tokio::spawn(m.worker.clone().run(stop.clone()));

    // The claim cannot be stored: the send duty sleeps on the clock (1 s, doubling up to 8 s;
    // see worker::duty) instead of retrying at once. The storage probe sleeps 2 s.
    let now = clock.monotonic();
    let backoff = clock.wait_for_sleeper_matching(|d| d > now + Duration::from_millis(750) && d <= now + HALF_A_PROBE);
    let wake = tokio::time::timeout(HANG_GUARD, backoff).await.expect("the send duty backs off on the clock");
    assert_eq!(m.app.release(&id).await["status"], "approved", "nothing was claimed");
    clock.advance_to(wake);
    assert_eq!(m.sim.count(RouteKind::Unisolate), 0);

    fs.free();
    clock.advance(Duration::from_secs(4));
    for _ in 0..1000 {
        if m.sim.unisolate_count(SEEDED) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(m.sim.unisolate_count(SEEDED), 1, "sent once storage took the claim");
    stop.cancel();
}
