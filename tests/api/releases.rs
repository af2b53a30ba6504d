use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn a_requester_creates_a_pending_release_with_a_location_header() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/api/v1/releases",
            &app.requester(),
            json!({"machine_id": machine(1).to_uppercase(), "comment": "  reimaged and scanned clean  ", "ticket": "INC-42"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(location, format!("/api/v1/releases/{}", body["id"].as_str().unwrap()));
    assert_eq!(body["status"], "pending");
    assert_eq!(body["machine_id"], machine(1), "stored lower-case");
    assert_eq!(body["comment"], "reimaged and scanned clean", "trimmed");
    assert_eq!(body["ticket"], "INC-42");
    assert_eq!(body["requested_by"], "alice");
    assert_eq!(body["approvals_required"], 1);
    assert_eq!(body["approvals"], json!([]));
    assert_eq!(body["attempts"], 0);
    for field in ["mde_action_id", "mde_action_status", "last_error", "decided_by", "decided_at"] {
        assert!(body[field].is_null(), "{field}");
    }
    let requested = time::OffsetDateTime::parse(
        body["requested_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let expires = time::OffsetDateTime::parse(
        body["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(expires - requested, time::Duration::hours(24));
    assert!(body["requested_at"].as_str().unwrap().ends_with('Z'));

    let fetched: Value = app.get(&location, &app.approver("bob")).await.json().await.unwrap();
    assert_eq!(fetched, body);
    assert_eq!(app.count("SELECT COUNT(*) FROM releases").await, 1);
}

#[tokio::test]
async fn a_caller_without_the_requester_role_cannot_create_a_release() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/api/v1/releases",
            &app.approver("bob"),
            json!({"machine_id": machine(1), "comment": "reimaged and scanned clean"}),
        )
        .await;
    assert_eq!(error_code(r).await, (StatusCode::FORBIDDEN, "missing_role".into()));
    assert_eq!(app.count("SELECT COUNT(*) FROM releases").await, 0);
}

#[tokio::test]
async fn a_machine_with_an_open_release_refuses_a_second_one_and_names_the_open_one() {
    let app = spawn_app().await;
    let first = app.create_release(7).await;
    let r = app
        .post(
            "/api/v1/releases",
            &app.token("carol", &[REQUESTER]),
            json!({"machine_id": machine(7), "comment": "another reason to release"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "release_already_open");
    assert_eq!(body["error"]["open_release_id"], first["id"]);
    // Once approved it is still open; once cancelled it is not.
    assert_eq!(app.count("SELECT COUNT(*) FROM releases").await, 1);
    let r = app
        .post(&format!("/api/v1/releases/{}/cancel", first["id"].as_str().unwrap()), &app.requester(), json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.create_release(7).await;
}

#[tokio::test]
async fn an_unknown_release_is_404_and_a_malformed_id_is_400() {
    let app = spawn_app().await;
    let r = app.get("/api/v1/releases/0192f0c4-8a1e-7c3b-9d2f-4e5a6b7c8d9e", &app.auditor()).await;
    assert_eq!(error_code(r).await, (StatusCode::NOT_FOUND, "release_not_found".into()));
    let r = app.get("/api/v1/releases/not-an-id", &app.auditor()).await;
    assert_eq!(error_code(r).await, (StatusCode::BAD_REQUEST, "invalid_release_id".into()));
}

#[tokio::test]
async fn releases_list_newest_first_with_filters_and_cursor_pagination() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(app.create_release(n).await["id"].as_str().unwrap().to_string());
    }
    let carol = app.token("carol", &[REQUESTER]);
    app.post("/api/v1/releases", &carol, json!({"machine_id": machine(99), "comment": "carol's machine is clean"}))
        .await;
    app.approve(&ids[1], &app.approver("bob")).await;

    let page: Value =
        app.get("/api/v1/releases?limit=2&requested_by=alice", &app.auditor()).await.json().await.unwrap();
    let got: Vec<&str> = page["items"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(got, vec![ids[4].as_str(), ids[3].as_str()]);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let page: Value = app
        .get(&format!("/api/v1/releases?limit=2&requested_by=alice&cursor={cursor}"), &app.auditor())
        .await
        .json()
        .await
        .unwrap();
    let got: Vec<&str> = page["items"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(got, vec![ids[2].as_str(), ids[1].as_str()]);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let page: Value = app
        .get(&format!("/api/v1/releases?limit=2&requested_by=alice&cursor={cursor}"), &app.auditor())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(page["next_cursor"].is_null());

    let approved: Value = app.get("/api/v1/releases?status=approved", &app.requester()).await.json().await.unwrap();
    assert_eq!(approved["items"].as_array().unwrap().len(), 1);
    assert_eq!(approved["items"][0]["id"], ids[1].as_str());
    assert_eq!(approved["items"][0]["approvals"][0]["approver"], "bob", "listed releases carry their approvals");
    let by_machine: Value = app
        .get(&format!("/api/v1/releases?machine_id={}", machine(99)), &app.approver("bob"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_machine["items"][0]["requested_by"], "carol");

    for bad in ["status=done", "machine_id=xyz", "limit=0", "limit=201", "cursor=abc", "colour=red"] {
        let r = app.get(&format!("/api/v1/releases?{bad}"), &app.auditor()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn reading_other_peoples_releases_needs_one_of_the_three_roles() {
    let app = spawn_app().await;
    let id = app.create_release(1).await["id"].as_str().unwrap().to_string();
    let eve = app.token("eve", &["Something.Else"]);
    let r = app.get(&format!("/api/v1/releases/{id}"), &eve).await;
    assert_eq!(error_code(r).await, (StatusCode::FORBIDDEN, "missing_role".into()));
    // Listing shows her nobody else's (her own requests only: none).
    let r = app.get("/api/v1/releases", &eve).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.json::<Value>().await.unwrap()["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn only_the_requester_can_cancel_and_only_while_pending() {
    let app = spawn_app().await;
    let id = app.create_release(1).await["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/releases/{id}/cancel");
    let r = app.post(&path, &app.approver("bob"), json!({})).await;
    assert_eq!(error_code(r).await, (StatusCode::FORBIDDEN, "not_requester".into()));
    let r = app.post(&path, &app.requester(), json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["decided_by"], "alice");
    assert!(body["decided_at"].is_string());
    let r = app.post(&path, &app.requester(), json!({})).await;
    assert_eq!(error_code(r).await, (StatusCode::CONFLICT, "release_not_pending".into()));
    assert_eq!(app.audit_actions("release_cancelled").await.len(), 1);
    assert_eq!(app.audit_actions("cancellation_refused").await.len(), 2);
}

#[tokio::test]
async fn a_pending_release_past_its_ttl_is_expired_on_access() {
    let app = spawn_app().await;
    let id = app.create_release(1).await["id"].as_str().unwrap().to_string();
    app.clock.advance(std::time::Duration::from_secs(24 * 3600 + 1));
    assert_eq!(app.release(&id).await["status"], "expired");
    let expired = app.audit_actions("release_expired").await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["actor"], "system:dualkey");
    // The machine is free for a new request.
    app.create_release(1).await;
}

#[tokio::test]
async fn the_sweeper_expires_pending_releases_without_anyone_asking() {
    // The sweeper sleeps on the clock: moving it a day wakes the sweeper an hour's sweep away.
    let app = spawn_app_with(|s| s.policy.sweep_interval = "1h".parse().unwrap()).await;
    let id = app.create_release(1).await["id"].as_str().unwrap().to_string();
    let other = app.create_release(2).await["id"].as_str().unwrap().to_string();
    app.approve(&other, &app.approver("bob")).await;
    app.clock.advance(std::time::Duration::from_secs(25 * 3600));
    let pool = app.raw_db().await;
    let mut status = String::new();
    for _ in 0..200 {
        status =
            sqlx::query_scalar("SELECT status FROM releases WHERE id = $1").bind(&id).fetch_one(&pool).await.unwrap();
        if status == "expired" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(status, "expired");
    let other_status: String =
        sqlx::query_scalar("SELECT status FROM releases WHERE id = $1").bind(&other).fetch_one(&pool).await.unwrap();
    assert_eq!(other_status, "approved", "only pending releases expire");
}

#[tokio::test]
async fn health_and_readiness_need_no_token() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.stop().await;
}
