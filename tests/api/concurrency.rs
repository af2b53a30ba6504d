use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_simultaneous_approvals_give_exactly_one_transition_to_approved() {
    let app = spawn_app_with(|s| s.policy.approvals_required = 3).await;
    let id = app.create_release(1).await["id"].as_str().unwrap().to_string();
    let tokens: Vec<String> = (0..20).map(|i| app.approver(&format!("approver-{i}"))).collect();
    let calls = tokens.iter().map(|t| app.approve(&id, t));
    let responses = join_statuses(calls).await;
    let ok = responses.iter().filter(|s| **s == StatusCode::OK).count();
    let conflict = responses.iter().filter(|s| **s == StatusCode::CONFLICT).count();
    assert_eq!((ok, conflict), (3, 17), "{responses:?}");
    assert_eq!(app.release(&id).await["status"], "approved");
    assert_eq!(app.count("SELECT COUNT(*) FROM approvals").await, 3);
    assert_eq!(app.audit_actions("release_approved").await.len(), 1);
    assert_eq!(app.audit_actions("approval_recorded").await.len(), 3);
    assert_eq!(app.audit_actions("approval_refused").await.len(), 17);
    let report: serde_json::Value = app.get("/api/v1/audit/verify", &app.auditor()).await.json().await.unwrap();
    assert_eq!(report["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_requests_for_one_machine_create_exactly_one_release() {
    let app = spawn_app().await;
    let tokens: Vec<String> = (0..20).map(|i| app.token(&format!("requester-{i}"), &[REQUESTER])).collect();
    let app = &app;
    let calls = tokens.iter().map(|t| async move {
        app.post("/api/v1/releases", t, json!({"machine_id": machine(5), "comment": "reimaged and scanned clean"}))
            .await
    });
    let responses = join_statuses(calls).await;
    let created = responses.iter().filter(|s| **s == StatusCode::CREATED).count();
    let conflict = responses.iter().filter(|s| **s == StatusCode::CONFLICT).count();
    assert_eq!((created, conflict), (1, 19));
    assert_eq!(app.count("SELECT COUNT(*) FROM releases").await, 1);
}

/// Sends all the calls at once and returns their statuses.
async fn join_statuses<F>(calls: impl Iterator<Item = F>) -> Vec<StatusCode>
where
    F: std::future::Future<Output = reqwest::Response>,
{
    futures::future::join_all(calls).await.into_iter().map(|r| r.status()).collect()
}
