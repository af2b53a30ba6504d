use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;

async fn post_raw(app: &TestApp, body: &str, content_type: &str) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/releases"))
        .bearer_auth(app.requester())
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn bad_bodies_get_clear_4xx_codes_and_store_nothing() {
    let app = spawn_app().await;
    let m = machine(1);
    let long = "x".repeat(1001);
    let cases: Vec<(&str, String, &str, StatusCode, &str)> = vec![
        ("malformed json", "{\"machine_id\": ".into(), "application/json", StatusCode::BAD_REQUEST, "malformed_json"),
        ("not an object", "[1,2]".into(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (
            "wrong type",
            json!({"machine_id": 5, "comment": "reimaged and scanned clean"}).to_string(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "unknown field",
            json!({"machine_id": m, "comment": "reimaged and scanned clean", "approver": "me"}).to_string(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "missing comment",
            json!({"machine_id": m}).to_string(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "short machine id",
            json!({"machine_id": "abc", "comment": "reimaged and scanned clean"}).to_string(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_machine_id",
        ),
        (
            "non-hex machine id",
            json!({"machine_id": "z".repeat(40), "comment": "reimaged and scanned clean"}).to_string(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_machine_id",
        ),
        (
            "short comment",
            json!({"machine_id": m, "comment": "   ok      "}).to_string(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_comment",
        ),
        (
            "long comment",
            json!({"machine_id": m, "comment": long}).to_string(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_comment",
        ),
        (
            "control characters",
            json!({"machine_id": m, "comment": "clean\u{1b}[31m forged log line"}).to_string(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_comment",
        ),
        (
            "bad ticket",
            json!({"machine_id": m, "comment": "reimaged and scanned clean", "ticket": "has spaces"}).to_string(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_ticket",
        ),
        (
            "not json",
            "machine_id=x".into(),
            "application/x-www-form-urlencoded",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
    ];
    for (name, body, ct, status, code) in cases {
        let r = post_raw(&app, &body, ct).await;
        assert_eq!(error_code(r).await, (status, code.to_string()), "{name}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM releases").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE action != 'policy_loaded'").await, 0);
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let app = spawn_app().await;
    let body = json!({"machine_id": machine(1), "comment": "y".repeat(70 * 1024)}).to_string();
    let r = post_raw(&app, &body, "application/json").await;
    assert_eq!(error_code(r).await, (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large".into()));
    assert_eq!(app.count("SELECT COUNT(*) FROM releases").await, 0);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = spawn_app().await;
    let r = app.get("/api/v1/nothing-here", &app.auditor()).await;
    assert_eq!(error_code(r).await, (StatusCode::NOT_FOUND, "not_found".into()));
    let r = app.http.delete(app.url("/api/v1/releases")).bearer_auth(app.auditor()).send().await.unwrap();
    assert_eq!(error_code(r).await, (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into()));
}

#[tokio::test]
async fn a_malformed_approval_body_is_refused_before_anything_is_recorded() {
    let app = spawn_app().await;
    let id = app.create_release(1).await["id"].as_str().unwrap().to_string();
    let url = app.url(&format!("/api/v1/releases/{id}/approve"));
    for (body, status) in [
        ("{", StatusCode::BAD_REQUEST),
        ("{\"comment\": 5}", StatusCode::UNPROCESSABLE_ENTITY),
        ("{\"extra\": 1}", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let r = app
            .http
            .post(&url)
            .bearer_auth(app.approver("bob"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{body}");
    }
    assert_eq!(app.release(&id).await["status"], "pending");
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE action != 'policy_loaded'").await, 1);
}
