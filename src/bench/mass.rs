//! `dualkey bench --mass N`: the day after an outbreak. N isolated devices are released as one
//! batch, approved once, against the simulator with its budget raised so the drain takes about a
//! minute (N/2 calls a minute per API, like MDE's 100 scaled). Prints the MDE calls per released
//! device by API (every `/api/` call from the batch's creation until its last release is final,
//! scans included, token calls excluded), the unisolate rate as a share of what the budget
//! allowed over the drain, the 429s, and the API's latency while the batch drains.

use super::{Daemon, machine, ms};
use crate::mde::simulator::{RouteKind, SeedMachine, Simulator, SimulatorConfig};
use crate::settings::Settings;
use anyhow::Context;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The simulator's action lifecycle: short, so the drain, not MDE's work, sets the run's length.
const PENDING_FOR: Duration = Duration::from_secs(1);
const IN_PROGRESS_FOR: Duration = Duration::from_secs(3);

/// Runs the mass release and prints its figures. False when a release did not succeed, the
/// simulator answered a 429, or the calls per device exceed 1.2.
pub(crate) async fn run(mut settings: Settings, n: usize) -> anyhow::Result<bool> {
    anyhow::ensure!((2..=1000).contains(&n), "--mass takes 2 to 1000 devices (one batch)");
    let per_minute = (n as u32).div_ceil(2);
    let per_hour = per_minute * 15;
    let sim_config = SimulatorConfig {
        machines: (0..n).map(|i| SeedMachine::isolated(&machine(i), "outbreak.contoso.com")).collect(),
        rate_per_minute: per_minute,
        rate_per_hour: per_hour,
        pending_for: PENDING_FOR,
        in_progress_for: IN_PROGRESS_FOR,
        ..SimulatorConfig::default()
    };
    let sim = Simulator::start(sim_config).await?;
    super::point_at(&mut settings, &sim, per_minute, per_hour)?;
    let m = &mut settings.mde;
    m.worker_enabled = true;
    println!(
        "mass release: {n} isolated devices in one batch, MDE budget {per_minute}/min and {per_hour}/h per API, \
         poll_interval {}",
        humantime::format_duration(m.poll_interval.get())
    );
    let daemon = Daemon::start(settings).await?;
    let http = reqwest::Client::new();
    // Let start-up scans pass, so the count below is the batch's own.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let from = sim.requests().len();
    let started = Instant::now();
    let ids: Vec<String> = (0..n).map(machine).collect();
    let body = json!({"machine_ids": ids, "comment": "outbreak cleanup: reimaged and scanned clean"});
    let created = daemon.call(&http, Method::POST, "/api/v1/release-batches", &daemon.requester, Some(&body)).await?;
    let batch = created["id"].as_str().context("batch without id")?.to_string();
    let create_ms = ms(started.elapsed());
    let approve = format!("/api/v1/release-batches/{batch}/approve");
    daemon.call(&http, Method::POST, &approve, &daemon.approver, None).await?;
    // Probe the API while the batch drains: a batch read and a release read, ten times a second.
    let release = created["releases"][0]["id"].as_str().context("batch without releases")?.to_string();
    let (batch_path, release_path) =
        (format!("/api/v1/release-batches/{batch}"), format!("/api/v1/releases/{release}"));
    let mut latencies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    let counts = loop {
        let t = Instant::now();
        let b = daemon.call(&http, Method::GET, &batch_path, &daemon.approver, None).await?;
        latencies.push(t.elapsed());
        let t = Instant::now();
        daemon.call(&http, Method::GET, &release_path, &daemon.approver, None).await?;
        latencies.push(t.elapsed());
        let counts = b["counts"].as_object().cloned().unwrap_or_default();
        let open: u64 = ["pending", "approved", "dispatching", "dispatched"]
            .iter()
            .filter_map(|s| counts.get(*s).and_then(Value::as_u64))
            .sum();
        if open == 0 {
            break counts;
        }
        anyhow::ensure!(Instant::now() < deadline, "the batch did not drain in 10 minutes: {counts:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let elapsed = started.elapsed();
    let seen: Vec<_> = sim.requests().into_iter().skip(from).collect();
    daemon.stop().await?;
    sim.shutdown().await;

    let released = counts.get("succeeded").and_then(Value::as_u64).unwrap_or(0) as usize;
    let api_calls: Vec<_> = seen.iter().filter(|r| r.path.starts_with("/api/")).collect();
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for r in &api_calls {
        *by_kind.entry(format!("{:?}", r.kind)).or_default() += 1;
    }
    let throttled = api_calls.iter().filter(|r| r.status == Some(429)).count();
    let unisolates: Vec<_> = api_calls.iter().filter(|r| r.kind == RouteKind::Unisolate).collect();
    let per_device = api_calls.len() as f64 / released.max(1) as f64;
    println!("released:                     {released} of {n} in {:.1} s ({counts:?})", elapsed.as_secs_f64());
    println!("batch create ({n} releases):   {create_ms:.0} ms");
    println!("MDE calls per released device: {per_device:.3} ({} calls in all)", api_calls.len());
    for (kind, calls) in &by_kind {
        println!("  {kind:<14} {calls:>6}  {:.3} per device", *calls as f64 / released.max(1) as f64);
    }
    let share = match (unisolates.first(), unisolates.last()) {
        (Some(first), Some(last)) => {
            let drain = last.instant.saturating_since(first.instant);
            // The windows allow per_minute calls in any rolling minute, per_hour in any hour.
            let minutes = drain.as_secs() / 60 + 1;
            let hours = drain.as_secs() / 3600 + 1;
            let allowed = (u64::from(per_minute) * minutes).min(u64::from(per_hour) * hours) as f64;
            let share = unisolates.len() as f64 / allowed;
            println!(
                "unisolate rate:               {} sent over {:.1} s: {:.1}% of what the budget allowed ({allowed:.0})",
                unisolates.len(),
                drain.as_secs_f64(),
                100.0 * share
            );
            share
        }
        _ => 0.0,
    };
    println!("429 answers:                  {throttled}");
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1];
    println!(
        "API while draining:           p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (n={})",
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(*latencies.last().unwrap_or(&Duration::ZERO)),
        latencies.len()
    );
    Ok(released == n && throttled == 0 && per_device <= 1.2 && share >= 0.95)
}
