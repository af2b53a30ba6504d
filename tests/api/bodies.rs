//! Every body is a JSON object sent as JSON, and every error, the framework's own included, is
//! the API's JSON error.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn send(app: &TestApp, method: Method, path: &str, token: &str, body: (&str, &str)) -> reqwest::Response {
    let (content_type, body) = body;
    let mut req = app.http.request(method, app.url(path)).bearer_auth(token).body(body.to_string());
    if !content_type.is_empty() {
        req = req.header("content-type", content_type);
    }
    req.send().await.unwrap()
}

/// The status and code of a JSON error, checking it is sent as `application/json`.
async fn json_error(r: reqwest::Response) -> (StatusCode, String) {
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
    assert_eq!(ct.as_deref(), Some("application/json"), "status {}", r.status());
    error_code(r).await
}

/// Bodies that are not a JSON object sent as JSON, with the answer each must get.
fn loose_bodies(object: &str) -> Vec<((&'static str, String), StatusCode, &'static str)> {
    let unprocessable = (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    let unsupported = (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    [
        (("application/json", "[]".to_string()), unprocessable),
        (("application/json", "[\"reimaged and scanned clean\"]".into()), unprocessable),
        (("application/json", format!("[\"{}\", \"reimaged and scanned clean\"]", machine(1))), unprocessable),
        (("application/json", "\"reimaged and scanned clean\"".into()), unprocessable),
        (("application/json", "42".into()), unprocessable),
        (("application/json", "null".into()), unprocessable),
        (("application/json", " true ".into()), unprocessable),
        (("text/plain", "[]".into()), unsupported),
        (("text/plain", "[\"reimaged and scanned clean\"]".into()), unsupported),
        (("text/plain", object.into()), unsupported),
        (("", object.into()), unsupported),
        (("application/x-www-form-urlencoded", "comment=reimaged".into()), unsupported),
    ]
    .into_iter()
    .map(|(body, (status, code))| (body, status, code))
    .collect()
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_sent_as_json_is_refused_on_every_route_and_nothing_is_stored() {
    let app = spawn_app().await;
    let id = app.create_release(1).await["id"].as_str().unwrap().to_string();
    let create_object = json!({"machine_id": machine(2), "comment": "reimaged and scanned clean"}).to_string();
    let comment_object = json!({"comment": "reimaged and scanned clean"}).to_string();
    let routes: [(String, String, String); 4] = [
        ("/api/v1/releases".into(), app.requester(), create_object),
        (format!("/api/v1/releases/{id}/approve"), app.approver("bob"), comment_object.clone()),
        (format!("/api/v1/releases/{id}/reject"), app.approver("bob"), comment_object),
        (format!("/api/v1/releases/{id}/cancel"), app.requester(), "{}".into()),
    ];
    for (path, token, object) in &routes {
        for ((ct, body), status, code) in loose_bodies(object) {
            let r = send(&app, Method::POST, path, token, (ct, &body)).await;
            assert_eq!(json_error(r).await, (status, code.to_string()), "{path} {ct:?} {body}");
        }
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM releases").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM approvals").await, 0);
    assert_eq!(app.release(&id).await["status"], "pending");
    let actions: Vec<Value> = app.audit().await.into_iter().map(|e| e["action"].clone()).collect();
    assert_eq!(actions, vec![json!("policy_loaded"), json!("release_requested")]);
}

#[tokio::test]
async fn an_empty_body_is_allowed_where_no_field_is_required_and_an_empty_object_everywhere_that_has_no_field() {
    let app = spawn_app().await;
    let first = app.create_release(1).await["id"].as_str().unwrap().to_string();
    let r = send(&app, Method::POST, &format!("/api/v1/releases/{first}/reject"), &app.approver("bob"), ("", "")).await;
    assert_eq!(json_error(r).await, (StatusCode::UNPROCESSABLE_ENTITY, "comment_required".into()));
    let r = send(&app, Method::POST, &format!("/api/v1/releases/{first}/cancel"), &app.requester(), ("", "")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let second = app.create_release(2).await["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/releases/{second}/cancel");
    let r = send(&app, Method::POST, &path, &app.requester(), ("application/json", "{}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let third = app.create_release(3).await["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/releases/{third}/approve");
    let r = send(&app, Method::POST, &path, &app.approver("bob"), ("application/json; charset=utf-8", "")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.release(&third).await["status"], "approved");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_json_on_create_approve_reject_and_cancel() {
    let app = spawn_app().await;
    let id = app.create_release(1).await["id"].as_str().unwrap().to_string();
    let big = json!({"comment": "y".repeat(70 * 1024)}).to_string();
    for (path, token) in [
        ("/api/v1/releases".to_string(), app.requester()),
        (format!("/api/v1/releases/{id}/approve"), app.approver("bob")),
        (format!("/api/v1/releases/{id}/reject"), app.approver("bob")),
        (format!("/api/v1/releases/{id}/cancel"), app.requester()),
    ] {
        for ct in ["application/json", "text/plain"] {
            let r = send(&app, Method::POST, &path, &token, (ct, &big)).await;
            assert_eq!(json_error(r).await, (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large".into()), "{path} {ct}");
        }
    }
    assert_eq!(app.release(&id).await["status"], "pending");
    assert_eq!(app.count("SELECT COUNT(*) FROM releases").await, 1);
}

#[tokio::test]
async fn a_path_that_is_not_utf8_is_400_json() {
    let app = spawn_app().await;
    let r = app.get("/api/v1/releases/%FF", &app.auditor()).await;
    assert_eq!(json_error(r).await, (StatusCode::BAD_REQUEST, "invalid_path".into()));
    let r = send(&app, Method::POST, "/api/v1/releases/%FF%FE/approve", &app.approver("bob"), ("", "")).await;
    assert_eq!(json_error(r).await, (StatusCode::BAD_REQUEST, "invalid_path".into()));
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_json_with_the_json_content_type() {
    let app = spawn_app().await;
    let r = app.get("/api/v1/nothing-here", &app.auditor()).await;
    assert_eq!(json_error(r).await, (StatusCode::NOT_FOUND, "not_found".into()));
    let r = app.http.get(app.url("/nowhere")).send().await.unwrap();
    assert_eq!(json_error(r).await, (StatusCode::NOT_FOUND, "not_found".into()));
    let r = send(&app, Method::DELETE, "/api/v1/releases", &app.auditor(), ("", "")).await;
    assert_eq!(json_error(r).await, (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into()));
    let r = send(&app, Method::PUT, "/healthz", &app.auditor(), ("", "")).await;
    assert_eq!(json_error(r).await, (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into()));
}
