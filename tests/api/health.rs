//! `/healthz` and `/readyz`: each part this instance needs, and whether it can do its job.

use crate::helpers::*;
use dualkey::mde::simulator::RouteKind;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The answer, less `tasks` (times of background passes; tests/api/metrics.rs reads them).
async fn readyz(app: &TestApp) -> (StatusCode, Value) {
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    let status = r.status();
    let mut body: Value = r.json().await.unwrap();
    assert!(body.as_object_mut().unwrap().remove("tasks").unwrap().is_object());
    (status, body)
}

#[tokio::test]
async fn readyz_reports_each_part_and_asks_for_an_mde_token_once_not_per_probe() {
    let app = spawn_app().await; // [mde] against the simulator, worker off
    for _ in 0..3 {
        let (status, body) = readyz(&app).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({"status": "ready", "database": "ok", "storage": "writable", "worker": "off", "mde": "token_ok", "bypasses": 0,
                   "jobs": {"expiry": "leader", "bypass_scan": "leader"}, "mde_api": {"status": "not_contacted"}})
        );
    }
    assert_eq!(app.sim.count(RouteKind::Token), 1, "the token is cached");
}

#[tokio::test]
async fn readyz_is_503_while_the_mde_token_cannot_be_obtained_and_remembers_the_failure() {
    let app = spawn_app_with(|s| s.mde.client_secret = Some(dualkey::secret::Secret::new("not-the-app-secret"))).await;
    for _ in 0..3 {
        let (status, body) = readyz(&app).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            json!({"status": "not_ready", "database": "ok", "storage": "writable", "worker": "off", "mde": "token_failing", "bypasses": 0,
                   "jobs": {"expiry": "leader", "bypass_scan": "leader"}, "mde_api": {"status": "not_contacted"}})
        );
    }
    assert_eq!(app.sim.count(RouteKind::Token), 1, "a failed token is not asked for on every probe");
}

#[tokio::test]
async fn readyz_reports_a_running_worker() {
    let app = spawn_app_with(|s| s.mde.worker_enabled = true).await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["worker"], "running");
}

#[tokio::test]
async fn an_api_only_instance_without_mde_is_ready_and_says_so() {
    let app = spawn_app_with(|s| {
        (s.mde.api_base, s.mde.token_url, s.mde.worker_enabled) = (None, None, false);
    })
    .await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"status": "ready", "database": "ok", "storage": "writable", "worker": "off", "mde": "not_configured", "bypasses": 0,
               "jobs": {"expiry": "leader"}})
    );
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
}
