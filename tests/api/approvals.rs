use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn a_different_approver_approves_and_the_release_becomes_approved() {
    let app = spawn_app().await;
    let id = app.create_release(1).await["id"].as_str().unwrap().to_string();
    let r = app
        .post(&format!("/api/v1/releases/{id}/approve"), &app.approver("bob"), json!({"comment": "checked the scan"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "approved");
    assert_eq!(body["approvals"][0]["approver"], "bob");
    assert_eq!(body["approvals"][0]["comment"], "checked the scan");
    assert!(body["approvals"][0]["at"].as_str().unwrap().ends_with('Z'));
    assert!(body["approved_at"].is_string());
    let actions: Vec<Value> =
        app.audit().await.into_iter().filter(|e| e["release_id"] == id.as_str()).map(|e| e["action"].clone()).collect();
    assert_eq!(actions, vec![json!("release_requested"), json!("approval_recorded"), json!("release_approved")]);
}

#[tokio::test]
async fn an_approver_cannot_approve_their_own_release_whatever_roles_they_hold() {
    let app = spawn_app().await;
    let both = app.token("alice", &[REQUESTER, APPROVER]);
    let r = app
        .post("/api/v1/releases", &both, json!({"machine_id": machine(1), "comment": "reimaged and scanned clean"}))
        .await;
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let r = app.approve(&id, &both).await;
    assert_eq!(error_code(r).await, (StatusCode::FORBIDDEN, "self_approval_forbidden".into()));
    assert_eq!(app.release(&id).await["status"], "pending");
    assert_eq!(app.count("SELECT COUNT(*) FROM approvals").await, 0);
    let refused = app.audit_actions("approval_refused").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["actor"], "alice");
    assert_eq!(refused[0]["release_id"], id.as_str());
    assert_eq!(refused[0]["details"]["reason"], "self_decision");
}

#[tokio::test]
async fn an_approval_without_the_approver_role_is_refused_and_audited() {
    let app = spawn_app().await;
    let id = app.create_release(1).await["id"].as_str().unwrap().to_string();
    let r = app.approve(&id, &app.token("mallory", &[REQUESTER, AUDITOR])).await;
    assert_eq!(error_code(r).await, (StatusCode::FORBIDDEN, "missing_role".into()));
    let refused = app.audit_actions("approval_refused").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["actor"], "mallory");
    assert_eq!(refused[0]["details"]["reason"], "missing_role");
    assert_eq!(refused[0]["details"]["roles"], json!([AUDITOR, REQUESTER]));
    assert_eq!(app.release(&id).await["status"], "pending");
}

#[tokio::test]
async fn the_same_person_approving_twice_is_409() {
    let app = spawn_app_with(|s| s.policy.approvals_required = 2).await;
    let id = app.create_release(1).await["id"].as_str().unwrap().to_string();
    assert_eq!(app.approve(&id, &app.approver("bob")).await.status(), StatusCode::OK);
    let r = app.approve(&id, &app.approver("bob")).await;
    assert_eq!(error_code(r).await, (StatusCode::CONFLICT, "already_approved".into()));
    let body = app.release(&id).await;
    assert_eq!(body["status"], "pending");
    assert_eq!(body["approvals"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_quorum_of_two_needs_two_distinct_approvers() {
    let app = spawn_app_with(|s| s.policy.approvals_required = 2).await;
    let id = app.create_release(1).await["id"].as_str().unwrap().to_string();
    let r: Value = app.approve(&id, &app.approver("bob")).await.json().await.unwrap();
    assert_eq!(r["status"], "pending");
    assert_eq!(r["approvals_required"], 2);
    let r: Value = app.approve(&id, &app.approver("carol")).await.json().await.unwrap();
    assert_eq!(r["status"], "approved");
    let approved = app.audit_actions("release_approved").await;
    assert_eq!(approved[0]["details"]["approvers"], json!(["bob", "carol"]));
}

#[tokio::test]
async fn approving_a_release_that_is_not_pending_is_409_and_audited() {
    let app = spawn_app().await;
    let id = app.create_release(1).await["id"].as_str().unwrap().to_string();
    app.approve(&id, &app.approver("bob")).await;
    let r = app.approve(&id, &app.approver("carol")).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "release_not_pending");
    assert_eq!(body["error"]["status"], "approved");
    let refused = app.audit_actions("approval_refused").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["details"]["reason"], "not_pending");
    assert_eq!(refused[0]["actor"], "carol");
}

#[tokio::test]
async fn approving_a_release_past_its_expiry_is_409_and_marks_it_expired() {
    let app = spawn_app().await;
    let id = app.create_release(1).await["id"].as_str().unwrap().to_string();
    app.clock.advance(std::time::Duration::from_secs(24 * 3600));
    let r = app.approve(&id, &app.approver("bob")).await;
    assert_eq!(error_code(r).await, (StatusCode::CONFLICT, "release_expired".into()));
    let pool = app.raw_db().await;
    let status: String =
        sqlx::query_scalar("SELECT status FROM releases WHERE id = $1").bind(&id).fetch_one(&pool).await.unwrap();
    assert_eq!(status, "expired");
    assert_eq!(app.count("SELECT COUNT(*) FROM approvals").await, 0);
    let actions: Vec<Value> =
        app.audit().await.into_iter().filter(|e| e["release_id"] == id.as_str()).map(|e| e["action"].clone()).collect();
    assert_eq!(actions, vec![json!("release_requested"), json!("release_expired"), json!("approval_refused")]);
}

#[tokio::test]
async fn an_approver_rejects_with_a_required_comment_and_the_rejection_is_final() {
    let app = spawn_app().await;
    let id = app.create_release(1).await["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/releases/{id}/reject");
    let r = app.post(&path, &app.approver("bob"), json!({})).await;
    assert_eq!(error_code(r).await, (StatusCode::UNPROCESSABLE_ENTITY, "comment_required".into()));
    let r = app.post(&path, &app.approver("bob"), json!({"comment": "no"})).await;
    assert_eq!(error_code(r).await, (StatusCode::UNPROCESSABLE_ENTITY, "invalid_comment".into()));
    let r = app.post(&path, &app.requester(), json!({"comment": "I changed my mind about it"})).await;
    assert_eq!(error_code(r).await, (StatusCode::FORBIDDEN, "self_rejection_forbidden".into()));
    let r = app.post(&path, &app.approver("bob"), json!({"comment": "malware still present on host"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "rejected");
    assert_eq!(body["decided_by"], "bob");
    assert_eq!(body["decision_comment"], "malware still present on host");
    let r = app.approve(&id, &app.approver("carol")).await;
    assert_eq!(error_code(r).await, (StatusCode::CONFLICT, "release_not_pending".into()));
    assert_eq!(app.audit_actions("release_rejected").await.len(), 1);
    assert_eq!(app.audit_actions("rejection_refused").await.len(), 1);
}

#[tokio::test]
async fn a_rejection_without_a_body_is_422_saying_a_comment_is_required() {
    let app = spawn_app().await;
    let id = app.create_release(1).await["id"].as_str().unwrap().to_string();
    let r = app
        .http
        .post(app.url(&format!("/api/v1/releases/{id}/reject")))
        .bearer_auth(app.approver("bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "comment_required");
    assert!(body["error"]["message"].as_str().unwrap().contains("comment"), "{body}");
    assert_eq!(app.release(&id).await["status"], "pending");
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE action != 'policy_loaded'").await, 1);
}

#[tokio::test]
async fn an_approval_can_be_sent_without_a_body() {
    let app = spawn_app().await;
    let id = app.create_release(1).await["id"].as_str().unwrap().to_string();
    let r = app
        .http
        .post(app.url(&format!("/api/v1/releases/{id}/approve")))
        .bearer_auth(app.approver("bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["approvals"][0]["comment"], Value::Null);
}
