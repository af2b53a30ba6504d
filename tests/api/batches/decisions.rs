//! Deciding a batch as one (each release under its own rule) and sending it fairly.

use super::*;

#[tokio::test]
async fn one_approval_approves_a_20_device_batch_and_the_worker_sends_every_release() {
    // One poll per release keeps the polls of 20 releases inside MDE's per-minute budget.
    let m = spawn_with_mde(test_simulator(), |s| s.mde.poll_interval = "200ms".parse().unwrap()).await;
    let app = &m.app;
    let ids = machines(0..20);
    let batch = batch_of(app, &ids).await;
    let id = id_of(&batch);
    let body = decided(app, &id, "approve", &app.approver("bob"), json!({"comment": "scans checked"})).await;
    let results = outcomes(&body);
    assert_eq!(results.len(), 20);
    assert!(results.iter().all(|(_, applied, status, code)| *applied && status == "approved" && code.is_none()));
    assert_eq!(body["counts"], json!({"approved": 20}));
    assert_eq!(app.audit_actions("approval_recorded").await.len(), 20);
    assert_eq!(app.audit_actions("release_approved").await.len(), 20);
    let approved = app.audit_actions("batch_approved").await;
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0]["details"]["comment"], "scans checked");
    assert_eq!(approved[0]["details"]["results"].as_array().unwrap().len(), 20);

    // The counts move as the worker sends.
    for _ in 0..5 {
        m.worker.step().await.unwrap();
    }
    assert_eq!(show(app, &id).await["counts"], json!({"approved": 15, "dispatched": 5}));
    for _ in 0..1000 {
        m.worker.run_until_idle().await.unwrap();
        if show(app, &id).await["counts"] == json!({"succeeded": 20}) {
            break;
        }
        app.clock.advance(Duration::from_millis(100));
    }
    assert_eq!(show(app, &id).await["counts"], json!({"succeeded": 20}));
    for machine_id in &ids {
        assert_eq!(m.sim.unisolate_count(machine_id), 1, "{machine_id}");
    }
}

#[tokio::test]
async fn the_requester_approving_their_own_batch_applies_to_nothing() {
    let app = spawn_app().await;
    let both = app.token("alice", &[REQUESTER, APPROVER]);
    let r = post_batch(&app, &both, json!({"machine_ids": machines(1..4), "comment": COMMENT})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = id_of(&r.json().await.unwrap());
    let body = decided(&app, &id, "approve", &both, json!({})).await;
    let results = outcomes(&body);
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|(_, applied, status, code)| !*applied
        && status == "pending"
        && code.as_deref() == Some("self_approval_forbidden")));
    assert_eq!(body["counts"], json!({"pending": 3}));
    assert_eq!(app.count("SELECT COUNT(*) FROM approvals").await, 0);
    let refused = app.audit_actions("batch_decision_refused").await;
    assert_eq!(refused.len(), 1, "one refusal for the batch");
    assert_eq!(refused[0]["details"]["decision"], "approve");
    assert_eq!(refused[0]["details"]["reason"], "nothing_applied");
    assert!(app.audit_actions("approval_recorded").await.is_empty());
}

#[tokio::test]
async fn a_mixed_batch_needs_for_each_device_what_its_rule_needs() {
    let m = app_with(POLICY).await;
    let app = &m.app;
    let (m1, m2) = (machine(1), machine(2));
    let batch = batch_of(app, &[m1.clone(), DC1.into(), m2.clone(), DC2.into()]).await;
    let id = id_of(&batch);

    let body = decided(app, &id, "approve", &app.approver("carol"), json!({})).await;
    assert_eq!(
        outcomes(&body),
        [applied(&m1, "approved"), applied(DC1, "pending"), applied(&m2, "approved"), applied(DC2, "pending")],
        "an approver fills the approver slot of the tier0 devices"
    );
    assert_eq!(body["counts"], json!({"approved": 2, "pending": 2}));

    let body = decided(app, &id, "approve", &app.approver("dave"), json!({})).await;
    assert_eq!(
        outcomes(&body),
        [
            refused(&m1, "approved", "release_not_pending"),
            refused(DC1, "pending", "no_open_slot"),
            refused(&m2, "approved", "release_not_pending"),
            refused(DC2, "pending", "no_open_slot")
        ]
    );

    // A Tier0 owner without the approver role: the ordinary devices answer what a single
    // approval of them would (the role is checked before the status).
    let owner = app.token("erin", &[OWNER]);
    let body = decided(app, &id, "approve", &owner, json!({})).await;
    assert_eq!(
        outcomes(&body),
        [
            refused(&m1, "approved", "missing_role"),
            applied(DC1, "approved"),
            refused(&m2, "approved", "missing_role"),
            applied(DC2, "approved")
        ]
    );
    assert_eq!(body["counts"], json!({"approved": 4}));
    let dc = app.release(body["results"][1]["release_id"].as_str().unwrap()).await;
    let approvers: Vec<&str> =
        dc["approvals"].as_array().unwrap().iter().map(|a| a["approver"].as_str().unwrap()).collect();
    assert_eq!(approvers, ["carol", "erin"]);
    assert_eq!(app.audit_actions("batch_approved").await.len(), 2);
    assert_eq!(app.audit_actions("batch_decision_refused").await.len(), 1, "dave's applied to nothing");
}

#[tokio::test]
async fn rejecting_a_batch_rejects_its_pending_releases_and_lists_the_decided_ones_as_not_applied() {
    let app = spawn_app().await;
    let batch = batch_of(&app, &machines(1..4)).await;
    let id = id_of(&batch);
    let first = batch["releases"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(app.approve(&first, &app.approver("bob")).await.status(), StatusCode::OK);
    let r = decide(&app, &id, "reject", &app.approver("carol"), json!({})).await;
    assert_eq!(error_code(r).await, (StatusCode::UNPROCESSABLE_ENTITY, "comment_required".into()));
    let body = decided(&app, &id, "reject", &app.approver("carol"), json!({"comment": "malware still present"})).await;
    assert_eq!(
        outcomes(&body),
        [
            refused(&machine(1), "approved", "release_not_pending"),
            applied(&machine(2), "rejected"),
            applied(&machine(3), "rejected")
        ]
    );
    assert_eq!(body["counts"], json!({"approved": 1, "rejected": 2}));
    let member = app.release(body["results"][1]["release_id"].as_str().unwrap()).await;
    assert_eq!(member["decided_by"], "carol");
    assert_eq!(member["decision_comment"], "malware still present");
    assert_eq!(app.audit_actions("release_rejected").await.len(), 2);
    let rejected = app.audit_actions("batch_rejected").await;
    assert_eq!(rejected[0]["details"]["comment"], "malware still present");
}

#[tokio::test]
async fn only_the_requester_cancels_a_batch_and_it_cancels_what_is_still_pending() {
    let app = spawn_app().await;
    let batch = batch_of(&app, &machines(1..4)).await;
    let id = id_of(&batch);
    let first = batch["releases"][0]["id"].as_str().unwrap().to_string();
    let r = app.post(&format!("/api/v1/releases/{first}/cancel"), &app.requester(), json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = decide(&app, &id, "cancel", &app.token("mallory", &[REQUESTER]), json!({})).await;
    assert_eq!(error_code(r).await, (StatusCode::FORBIDDEN, "not_requester".into()));
    let body = decided(&app, &id, "cancel", &app.requester(), json!({})).await;
    assert_eq!(
        outcomes(&body),
        [
            refused(&machine(1), "cancelled", "release_not_pending"),
            applied(&machine(2), "cancelled"),
            applied(&machine(3), "cancelled")
        ]
    );
    assert_eq!(body["counts"], json!({"cancelled": 3}));
    assert_eq!(app.audit_actions("release_cancelled").await.len(), 3);
    assert_eq!(app.audit_actions("batch_cancelled").await.len(), 1);
    let refused = app.audit_actions("batch_decision_refused").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["actor"], "mallory");
    assert_eq!(refused[0]["details"]["reason"], "not_requester");
}

#[tokio::test]
async fn deciding_a_batch_past_its_expiry_expires_its_releases_and_applies_to_nothing() {
    let app = spawn_app().await;
    let id = id_of(&batch_of(&app, &machines(1..3)).await);
    app.clock.advance(Duration::from_secs(25 * 3600));
    let body = decided(&app, &id, "approve", &app.approver("bob"), json!({})).await;
    assert_eq!(
        outcomes(&body),
        [refused(&machine(1), "expired", "release_expired"), refused(&machine(2), "expired", "release_expired")]
    );
    assert_eq!(body["counts"], json!({"expired": 2}));
    assert_eq!(app.audit_actions("release_expired").await.len(), 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM approvals").await, 0);
}

#[tokio::test]
async fn a_batch_approval_that_would_pass_the_approval_limit_approves_nothing() {
    let policy = format!("max_approvals_per_approver_per_hour = 2\n{POLICY}");
    let m = app_with(&policy).await;
    let app = &m.app;
    let id = id_of(&batch_of(app, &machines(1..4)).await);
    let r = decide(app, &id, "approve", &app.approver("bob"), json!({})).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key(reqwest::header::RETRY_AFTER));
    assert_eq!(error_code(r).await.1, "approval_rate_exceeded");
    assert_eq!(app.count("SELECT COUNT(*) FROM approvals").await, 0);
    assert_eq!(show(app, &id).await["counts"], json!({"pending": 3}));
    let refused = app.audit_actions("batch_decision_refused").await;
    assert_eq!(refused[0]["details"]["reason"], "approval_rate_exceeded");
    let codes: Vec<&str> =
        refused[0]["details"]["results"].as_array().unwrap().iter().map(|o| o["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["approval_rate_exceeded"; 3]);
}

#[tokio::test]
async fn a_single_release_approved_after_a_50_device_batch_is_sent_among_the_first() {
    let m = spawn_with_mde(test_simulator(), |_| {}).await;
    let app = &m.app;
    let id = id_of(&batch_of(app, &machines(0..50)).await);
    decided(app, &id, "approve", &app.approver("bob"), json!({})).await;
    app.clock.advance(Duration::from_millis(5));
    let single = m.approved(&machine(100)).await;
    for _ in 0..3 {
        m.worker.step().await.unwrap();
    }
    let sent: Vec<String> =
        m.sim.requests().into_iter().filter(|r| r.kind == RouteKind::Unisolate).map(|r| r.path).collect();
    assert_eq!(sent.len(), 3);
    assert!(sent[0].contains(&machine(0)), "the batch's oldest approval goes first: {sent:?}");
    assert!(sent[1].contains(&machine(100)), "then the single release, not after the batch: {sent:?}");
    assert!(sent[2].contains(&machine(1)), "{sent:?}");
    assert_eq!(m.status(&single).await, "dispatched");
}
