//! `/metrics`: the Prometheus text format, read here with a third-party parser
//! (`prometheus-parse`), moving as releases flow; on `[server] metrics_bind` only, when set.
//! And `/readyz` in detail: MDE's reachability and each background task's last success.

use crate::helpers::*;
use dualkey::mde::simulator::{FaultAction, RouteKind};
use prometheus_parse::{Scrape, Value as Prom};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// One scrape, parsed.
struct Metrics(Scrape);

impl Metrics {
    async fn scrape(http: &reqwest::Client, base: &str) -> Self {
        let r = http.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
        let text = r.text().await.unwrap();
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        let samples = text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).count();
        let parsed: usize = scrape
            .samples
            .iter()
            .map(|s| match &s.value {
                Prom::Histogram(b) => b.len(),
                _ => 1,
            })
            .sum();
        assert_eq!(parsed, samples, "the parser read every sample line:\n{text}");
        Self(scrape)
    }

    /// The value of the sample `name{labels}`, which must be of the family's type.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let s = self.find(name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?}"));
        match (&s.value, name.ends_with("_total")) {
            (Prom::Counter(v), true) => *v,
            (Prom::Gauge(v), false) => *v,
            (Prom::Untyped(v), false) if name.ends_with("_sum") || name.ends_with("_count") => *v,
            (other, _) => panic!("{name} is {other:?}"),
        }
    }

    /// The cumulative count of histogram `name`'s bucket `le`.
    fn bucket(&self, name: &str, le: f64) -> f64 {
        let s = self.find(name, &[]).unwrap_or_else(|| panic!("no histogram {name}"));
        let Prom::Histogram(buckets) = &s.value else { panic!("{name} is not a histogram") };
        buckets.iter().find(|b| b.less_than == le).unwrap_or_else(|| panic!("{name} has no le={le}")).count
    }

    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<&prometheus_parse::Sample> {
        self.0.samples.iter().find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
    }

    fn has(&self, name: &str) -> bool {
        self.0.samples.iter().any(|s| s.metric == name)
    }
}

async fn scrape(app: &TestApp) -> Metrics {
    Metrics::scrape(&app.http, &app.base).await
}

async fn audit_head(app: &TestApp) -> f64 {
    app.audit().await.iter().map(|e| e["seq"].as_i64().unwrap()).max().unwrap() as f64
}

#[tokio::test]
async fn metrics_move_as_a_release_is_requested_decided_sent_and_finished() {
    let m = spawn_with_mde(test_simulator(), |_| {}).await;
    let app = &m.app;
    let before = scrape(app).await;
    assert_eq!(before.value("dualkey_database_up", &[]), 1.0);
    for status in ["pending", "approved", "succeeded", "rejected", "reisolated"] {
        assert_eq!(before.value("dualkey_releases", &[("status", status)]), 0.0, "{status}");
    }
    for outcome in ["approved", "rejected", "ratified", "refused"] {
        assert_eq!(before.value("dualkey_decisions_total", &[("outcome", outcome)]), 0.0, "{outcome}");
    }
    assert_eq!(before.value("dualkey_audit_head_seq", &[]), audit_head(app).await);
    assert_eq!(before.value("dualkey_mde_budget_remaining", &[("api", "Unisolate"), ("window", "minute")]), 100.0);
    assert_eq!(before.value("dualkey_mde_budget_remaining", &[("api", "Unisolate"), ("window", "hour")]), 1500.0);

    let id = app.create_release(1).await["id"].as_str().unwrap().to_string();
    let requested = scrape(app).await;
    assert_eq!(requested.value("dualkey_releases", &[("status", "pending")]), 1.0);
    assert_eq!(requested.value("dualkey_audit_head_seq", &[]), audit_head(app).await);

    // Alice may not approve her own request: a refusal; Bob approves 90 s after the request.
    assert_eq!(app.approve(&id, &app.requester()).await.status(), StatusCode::FORBIDDEN);
    app.clock.advance(Duration::from_secs(90));
    assert_eq!(app.approve(&id, &app.approver("bob")).await.status(), StatusCode::OK);
    app.clock.advance(Duration::from_secs(5));
    let approved = scrape(app).await;
    assert_eq!(approved.value("dualkey_decisions_total", &[("outcome", "refused")]), 1.0);
    assert_eq!(approved.value("dualkey_decisions_total", &[("outcome", "approved")]), 1.0);
    assert_eq!(approved.value("dualkey_request_to_decision_seconds_count", &[]), 1.0);
    let waited = approved.value("dualkey_request_to_decision_seconds_sum", &[]);
    assert!((90.0..91.0).contains(&waited), "{waited}");
    assert_eq!(approved.bucket("dualkey_request_to_decision_seconds", 60.0), 0.0);
    assert_eq!(approved.bucket("dualkey_request_to_decision_seconds", 120.0), 1.0);
    assert_eq!(approved.bucket("dualkey_request_to_decision_seconds", f64::INFINITY), 1.0);
    assert_eq!(approved.value("dualkey_releases", &[("status", "pending")]), 0.0);
    assert_eq!(approved.value("dualkey_releases", &[("status", "approved")]), 1.0);
    assert_eq!(approved.value("dualkey_worker_queue_depth", &[]), 1.0);
    let age = approved.value("dualkey_worker_oldest_approved_age_seconds", &[]);
    assert!((5.0..6.0).contains(&age), "approved 5 s ago: {age}");
    assert_eq!(approved.value("dualkey_approval_to_final_seconds_count", &[]), 0.0);

    m.drive_until(&id, "succeeded").await;
    let done = scrape(app).await;
    assert_eq!(done.value("dualkey_releases", &[("status", "approved")]), 0.0);
    assert_eq!(done.value("dualkey_releases", &[("status", "succeeded")]), 1.0);
    assert_eq!(done.value("dualkey_worker_queue_depth", &[]), 0.0);
    assert_eq!(done.value("dualkey_worker_oldest_approved_age_seconds", &[]), 0.0);
    assert_eq!(done.value("dualkey_approval_to_final_seconds_count", &[]), 1.0);
    let took = done.value("dualkey_approval_to_final_seconds_sum", &[]);
    assert!((5.0..30.0).contains(&took), "approved, then 5 s and the worker's rounds: {took}");
    assert_eq!(done.value("dualkey_mde_calls_total", &[("api", "Unisolate"), ("code", "201")]), 1.0);
    let followed: f64 = ["GetAction", "ListActions"]
        .iter()
        .filter_map(|api| done.find("dualkey_mde_calls_total", &[("api", api), ("code", "200")]))
        .map(|s| match s.value {
            Prom::Counter(v) => v,
            ref other => panic!("{other:?}"),
        })
        .sum();
    assert!(followed >= 1.0, "the action was followed to its end");
    assert_eq!(done.value("dualkey_mde_throttled_total", &[("api", "Unisolate")]), 0.0);
    assert_eq!(done.value("dualkey_mde_budget_remaining", &[("api", "Unisolate"), ("window", "minute")]), 99.0);
    assert_eq!(done.value("dualkey_mde_budget_remaining", &[("api", "Unisolate"), ("window", "hour")]), 1499.0);
    assert_eq!(done.value("dualkey_audit_head_seq", &[]), audit_head(app).await);

    // A rejection is a decision too, and a release rejected never finishes as approved.
    let other = app.create_release(2).await["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            &format!("/api/v1/releases/{other}/reject"),
            &app.approver("carol"),
            json!({"comment": "not yet, still infected"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let rejected = scrape(app).await;
    assert_eq!(rejected.value("dualkey_decisions_total", &[("outcome", "rejected")]), 1.0);
    assert_eq!(rejected.value("dualkey_releases", &[("status", "rejected")]), 1.0);
    assert_eq!(rejected.value("dualkey_request_to_decision_seconds_count", &[]), 2.0);
    assert_eq!(rejected.value("dualkey_approval_to_final_seconds_count", &[]), 1.0);
}

#[tokio::test]
async fn a_429_from_mde_is_counted_as_throttled_and_by_its_code() {
    let m = spawn_with_mde(test_simulator(), |_| {}).await;
    m.sim.inject(RouteKind::Unisolate, FaultAction::too_many_requests(1), 1);
    let id = m.approved(&machine(3)).await;
    m.drive_until(&id, "succeeded").await;
    let s = scrape(&m.app).await;
    assert_eq!(s.value("dualkey_mde_throttled_total", &[("api", "Unisolate")]), 1.0);
    assert_eq!(s.value("dualkey_mde_calls_total", &[("api", "Unisolate"), ("code", "429")]), 1.0);
    assert_eq!(s.value("dualkey_mde_calls_total", &[("api", "Unisolate"), ("code", "201")]), 1.0);
    assert_eq!(s.value("dualkey_mde_throttled_total", &[("api", "GetAction")]), 0.0);
}

#[tokio::test]
async fn with_metrics_bind_the_metrics_are_on_their_own_listener_and_not_on_the_api() {
    let app = spawn_app_with(|s| s.server.metrics_bind = Some("127.0.0.1:0".into())).await;
    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(error_code(r).await, (StatusCode::NOT_FOUND, "not_found".into()));
    let base = app.metrics_base.clone().expect("a metrics listener");
    assert_ne!(base, app.base);
    let s = Metrics::scrape(&app.http, &base).await;
    assert!(s.has("dualkey_releases"));
    assert!(s.has("dualkey_build_info"));
    // Only /metrics there: not the API, with or without a token.
    let r = app.http.get(format!("{base}/api/v1/releases")).bearer_auth(app.requester()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn notification_deliveries_are_counted_by_channel_and_outcome() {
    use crate::notify_support::{Answer, Receiver, whsec};
    let hook = Receiver::start().await;
    hook.answer([Answer::Status(503)]);
    let text = format!(
        "backoff_base = \"1s\"\nbackoff_max = \"2s\"\n[[channels]]\nname = \"soc-hook\"\nkind = \"webhook\"\nurl = \"{}\"\nsecret = \"{}\"\n[[routes]]\nevents = [\"release.requested\"]\nchannels = [\"soc-hook\"]\n",
        hook.url,
        whsec()
    );
    let notify: dualkey::settings::NotifySettings = toml::from_str(&text).unwrap();
    let app = spawn_app_with(move |s| s.notify = notify).await;
    let before = scrape(&app).await;
    assert_eq!(
        before.value("dualkey_notification_deliveries_total", &[("channel", "soc-hook"), ("outcome", "delivered")]),
        0.0
    );
    app.create_release(4).await;
    let counted = async |outcome: &str, n: f64| {
        eventually(&format!("{n} {outcome}"), async || {
            scrape(&app)
                .await
                .value("dualkey_notification_deliveries_total", &[("channel", "soc-hook"), ("outcome", outcome)])
                >= n
        })
        .await
    };
    counted("retry", 1.0).await;
    app.clock.advance(Duration::from_secs(3));
    counted("delivered", 1.0).await;
    let s = scrape(&app).await;
    assert_eq!(s.value("dualkey_notification_deliveries_total", &[("channel", "soc-hook"), ("outcome", "retry")]), 1.0);
    assert_eq!(s.value("dualkey_notification_deliveries_total", &[("channel", "soc-hook"), ("outcome", "dead")]), 0.0);
}

async fn readyz(app: &TestApp) -> Value {
    app.http.get(app.url("/readyz")).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn readyz_shows_each_background_task_s_last_success_and_whether_mde_answers() {
    let m = spawn_with_mde(test_simulator(), |s| s.mde.worker_enabled = true).await;
    let app = &m.app;
    assert_eq!(readyz(app).await["mde_api"]["status"], "not_contacted");
    for task in ["expiry", "job_leases", "worker.dispatch", "worker.poll"] {
        eventually(&format!("{task} to succeed once"), async || {
            readyz(app).await["tasks"][task]["last_success_at"].is_string()
        })
        .await;
    }
    let r = readyz(app).await;
    assert!(r["tasks"]["expiry"]["last_failure_at"].is_null(), "{r}");
    app.create_release(5).await;
    let seen = readyz(app).await;
    assert_eq!(seen["mde_api"]["status"], "reachable", "the request looked the device up: {seen}");
    assert!(seen["mde_api"]["last_answer_at"].is_string());

    // MDE's API stops answering (connections dropped): the next calls get no answer at all.
    m.sim.inject(RouteKind::GetMachine, FaultAction::Drop, 100);
    let r = app
        .post(
            "/api/v1/releases",
            &app.requester(),
            json!({"machine_id": machine(6), "comment": "reimaged and scanned clean"}),
        )
        .await;
    assert!(r.status().is_server_error() || r.status().is_client_error(), "{}", r.status());
    let gone = readyz(app).await;
    assert_eq!(gone["mde_api"]["status"], "unreachable", "{gone}");
    assert!(gone["mde_api"]["last_unreachable_at"].is_string());
    assert_eq!(gone["status"], "ready", "an MDE outage does not make the instance unready: {gone}");
}

#[tokio::test]
async fn audit_forwarding_counts_failed_attempts_and_every_entry_delivered() {
    use crate::forward_support::{HecAnswer, HecReceiver};
    const TOKEN: &str = "5b0e7f3c-2a41-4d8e-9c6b-1f2e3d4c5b6a";
    let hec = HecReceiver::start(TOKEN).await;
    hec.answer(HecAnswer::Refuse(503));
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("hec-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let forward: dualkey::settings::ForwardSettings = toml::from_str(&format!(
        "name = \"splunk\"\nkind = \"http\"\nbackoff_base = \"1s\"\nbackoff_max = \"2s\"\nurl = \"{}\"\ntoken_file = {:?}",
        hec.url, token_file
    ))
    .unwrap();
    let app = spawn_app_with(move |s| s.audit.forward = vec![forward]).await;
    app.create_release(7).await;
    let forwarded = async |app: &TestApp, name: &str| scrape(app).await.value(name, &[("forwarder", "splunk")]);
    eventually("a refused batch counted", async || {
        forwarded(&app, "dualkey_audit_forward_failures_total").await >= 1.0
    })
    .await;
    assert_eq!(forwarded(&app, "dualkey_audit_forwarded_entries_total").await, 0.0);

    hec.answer(HecAnswer::Accept);
    let head = audit_head(&app).await;
    eventually("every entry delivered and counted", async || {
        app.clock.advance(Duration::from_secs(2));
        forwarded(&app, "dualkey_audit_forwarded_entries_total").await >= head
    })
    .await;
    assert_eq!(forwarded(&app, "dualkey_audit_forwarded_entries_total").await, head);
    assert_eq!(scrape(&app).await.value("dualkey_audit_head_seq", &[]), head);
}
