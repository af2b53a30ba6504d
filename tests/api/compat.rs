//! The MDE-compatible front door: a caller written for Defender for Endpoint (plain HTTP, MDE's
//! own JSON, a bearer token) pointed at dualkey requests a release, follows it as an MDE machine
//! action, and gets MDE's error shapes and codes.

use crate::helpers::*;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use serde_json::{Value, json};

/// Exactly what Windows PowerShell 5.1's `@{Comment = '...'} | ConvertTo-Json` sends.
const POWERSHELL_BODY: &str = "{\r\n    \"Comment\":  \"Unisolate machine since it was clean and validated\"\r\n}";

async fn compat_app() -> MdeApp {
    spawn_with_mde(test_simulator(), |s| s.compat.mde_routes = true).await
}

/// An unmodified MDE-style call: `POST {base}/api/machines/{id}/unisolate`.
async fn unisolate(app: &TestApp, machine: &str, token: &str, body: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/api/machines/{machine}/unisolate", app.base))
        .header("Authorization", format!("Bearer {token}"))
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn action(app: &TestApp, id: &str) -> Value {
    let r = app.get(&format!("/api/machineactions/{id}"), &app.auditor()).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// The status, code and `target` of an answer, asserting MDE's error shape.
async fn mde_error(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
    let body: Value = r.json().await.unwrap();
    let e = &body["error"];
    assert_eq!(e.as_object().unwrap().len(), 3, "{body}");
    assert!(e["message"].is_string(), "{body}");
    assert!(uuid::Uuid::parse_str(e["target"].as_str().unwrap()).is_ok(), "{body}");
    (status, e["code"].as_str().unwrap().to_string())
}

async fn created(app: &TestApp, machine: &str) -> String {
    let r = unisolate(app, machine, &app.requester(), POWERSHELL_BODY).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_mde_style_client_takes_a_release_through_a_second_persons_approval_to_succeeded() {
    let mde = compat_app().await;
    let app = &mde.app;
    let r = unisolate(app, SEEDED, &app.requester(), POWERSHELL_BODY).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let made: Value = r.json().await.unwrap();
    assert_eq!(made["type"], "Unisolate");
    assert_eq!(made["status"], "Pending");
    assert_eq!(made["machineId"], SEEDED);
    assert_eq!(made["requestor"], "alice");
    assert_eq!(made["requestorComment"], "Unisolate machine since it was clean and validated");
    assert!(made["@odata.context"].as_str().unwrap().ends_with("/api/$metadata#MachineActions/$entity"));
    assert!(made["creationDateTimeUtc"].as_str().unwrap().ends_with('Z'));
    assert!(made["lastUpdateDateTimeUtc"].is_string() && made["cancellationRequestor"].is_null());
    assert_eq!(made["commands"], json!([]));
    let id = made["id"].as_str().unwrap();
    // It is a release like any other: the normal API, audit and MDE see the same thing.
    assert_eq!(app.release(id).await["status"], "pending");
    assert_eq!(app.audit_actions("release_requested").await.len(), 1);
    assert_eq!(mde.sim.unisolate_count(SEEDED), 0, "nothing reaches MDE before approval");
    assert_eq!(action(app, id).await["status"], "Pending");

    assert_eq!(app.approve(id, &app.approver("bob")).await.status(), StatusCode::OK);
    assert_eq!(action(app, id).await["status"], "InProgress");
    mde.drive_until(id, "dispatched").await;
    let working = action(app, id).await;
    assert_eq!(working["status"], "InProgress");
    assert!(working["externalId"].is_string(), "the MDE action's id: {working}");
    let done = mde.drive_until(id, "succeeded").await;
    let finished = action(app, id).await;
    assert_eq!(finished["status"], "Succeeded");
    assert_eq!(finished["externalId"], done["mde_action_id"]);
    assert_eq!(mde.sim.unisolate_count(SEEDED), 1);
    assert!(finished["lastUpdateDateTimeUtc"].as_str() > made["lastUpdateDateTimeUtc"].as_str());
}

#[tokio::test]
async fn a_rejected_or_expired_release_reads_as_cancelled() {
    let mde = compat_app().await;
    let app = &mde.app;
    let rejected = created(app, &machine(1)).await;
    let r = app
        .post(&format!("/api/v1/releases/{rejected}/reject"), &app.approver("bob"), json!({"comment": "not clean yet"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let a = action(app, &rejected).await;
    assert_eq!((a["status"].as_str(), a["cancellationRequestor"].as_str()), (Some("Cancelled"), Some("bob")));
    assert_eq!(a["cancellationComment"], "not clean yet");
    assert!(a["cancellationDateTimeUtc"].is_string());

    let expiring = created(app, &machine(2)).await;
    app.clock.advance(std::time::Duration::from_secs(24 * 3600 + 1));
    let a = action(app, &expiring).await;
    assert_eq!(a["status"], "Cancelled");
    assert!(a["cancellationRequestor"].is_null() && a["cancellationDateTimeUtc"].is_string());
    assert_eq!(mde.sim.unisolate_count(&machine(1)) + mde.sim.unisolate_count(&machine(2)), 0);
}

async fn list(app: &TestApp, query: &str) -> reqwest::Response {
    app.get(&format!("/api/machineactions?{query}"), &app.auditor()).await
}

async fn ids(app: &TestApp, filter: &str) -> Vec<String> {
    let r = list(app, &format!("$filter={}", filter.replace(' ', "%20"))).await;
    assert_eq!(r.status(), StatusCode::OK, "{filter}");
    let body: Value = r.json().await.unwrap();
    assert!(body["@odata.context"].as_str().unwrap().ends_with("/api/$metadata#MachineActions"));
    body["value"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn the_list_filters_by_machine_status_and_type_newest_first_and_pages() {
    let mde = compat_app().await;
    let app = &mde.app;
    let first = created(app, &machine(1)).await;
    let second = created(app, &machine(2)).await;
    let third = created(app, &machine(3)).await;
    let reject = format!("/api/v1/releases/{second}/reject");
    let r = app.post(&reject, &app.approver("bob"), json!({"comment": "not yet, wait"})).await;
    assert_eq!(r.status(), StatusCode::OK);

    assert_eq!(ids(app, "type eq 'Unisolate'").await, [third.clone(), second.clone(), first.clone()]);
    assert_eq!(ids(app, &format!("machineId eq '{}'", machine(1).to_uppercase())).await, std::slice::from_ref(&first));
    assert_eq!(ids(app, "status eq 'Pending'").await, [third.clone(), first.clone()]);
    assert_eq!(ids(app, "status eq 'Cancelled' and type eq 'Unisolate'").await, std::slice::from_ref(&second));
    assert_eq!(ids(app, &format!("machineId eq '{}' and status eq 'Pending'", machine(2))).await, Vec::<String>::new());
    assert!(ids(app, "type eq 'Isolate'").await.is_empty());
    assert!(ids(app, "machineId eq 'no-such-device'").await.is_empty());

    // $top pages, and @odata.nextLink leads to the rest.
    let page: Value = list(app, "$top=2").await.json().await.unwrap();
    let got: Vec<&str> = page["value"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(got, [third.as_str(), second.as_str()]);
    let next = page["@odata.nextLink"].as_str().unwrap();
    let rest: Value = app.http.get(next).bearer_auth(app.auditor()).send().await.unwrap().json().await.unwrap();
    assert_eq!(rest["value"].as_array().unwrap().len(), 1);
    assert_eq!(rest["value"][0]["id"], first.as_str());
    assert!(rest.get("@odata.nextLink").is_none());

    for bad in [
        "$filter=requestor%20eq%20'alice'",
        "$filter=status%20eq%20'Done'",
        "$filter=machineId%20ne%20'x'",
        "$filter=machineId%20eq%20'x'%20or%20type%20eq%20'Unisolate'",
        "$orderby=creationDateTimeUtc",
        "$top=many",
        "$top=10001",
        "$skip=-1",
        // The document says int64: one past it is refused, not read as a larger unsigned.
        "$skip=9223372036854775808",
    ] {
        assert_eq!(mde_error(list(app, bad).await).await, (StatusCode::BAD_REQUEST, "ODataError".into()), "{bad}");
    }
}

#[tokio::test]
async fn each_refusal_has_mdes_status_code_and_shape() {
    let mde = compat_app().await;
    let app = &mde.app;
    let bad = (StatusCode::BAD_REQUEST, "InvalidRequestBody".to_string());
    for body in [
        "{}",
        "{\"Comment\": \"\"}",
        "{\"Comment\": \"   \"}",
        "{\"Comment\": null}",
        "{\"Comment\": \"clean now\", \"IsolationType\": \"Full\"}",
        "{\"Comment\": \"short\"}",
        "[\"Unisolate machine since it was clean\"]",
        "{\"Comment\": ",
    ] {
        assert_eq!(mde_error(unisolate(app, SEEDED, &app.requester(), body).await).await, bad, "{body}");
    }
    let no_type = app.http.post(app.url(&format!("/api/machines/{SEEDED}/unisolate"))).bearer_auth(app.requester());
    let r = no_type.body(POWERSHELL_BODY).send().await.unwrap();
    assert_eq!(mde_error(r).await, (StatusCode::UNSUPPORTED_MEDIA_TYPE, "InvalidRequestBody".into()));
    let huge = format!("{{\"Comment\": \"{}\"}}", "x".repeat(70 * 1024));
    let r = unisolate(app, SEEDED, &app.requester(), &huge).await;
    assert_eq!(mde_error(r).await, (StatusCode::PAYLOAD_TOO_LARGE, "InvalidRequestBody".into()));

    let not_found = (StatusCode::NOT_FOUND, "ResourceNotFound".to_string());
    let unknown = format!("{}aa", "0".repeat(38));
    assert_eq!(mde_error(unisolate(app, &unknown, &app.requester(), POWERSHELL_BODY).await).await, not_found);
    assert_eq!(mde_error(unisolate(app, "not-a-machine", &app.requester(), POWERSHELL_BODY).await).await, not_found);
    let r = app.get(&format!("/api/machineactions/{}", uuid::Uuid::new_v4()), &app.auditor()).await;
    assert_eq!(mde_error(r).await, not_found);
    assert_eq!(mde_error(app.get("/api/machineactions/b89eb834", &app.auditor()).await).await, not_found);

    let r = unisolate(app, SEEDED, "not.a.token", POWERSHELL_BODY).await;
    assert!(r.headers()[WWW_AUTHENTICATE].to_str().unwrap().starts_with("Bearer"));
    assert_eq!(mde_error(r).await, (StatusCode::UNAUTHORIZED, "Unauthorized".into()));
    let r = app.http.get(app.url("/api/machineactions")).send().await.unwrap();
    assert_eq!(mde_error(r).await, (StatusCode::UNAUTHORIZED, "Unauthorized".into()));
    let forbidden = (StatusCode::FORBIDDEN, "Forbidden".to_string());
    assert_eq!(mde_error(unisolate(app, SEEDED, &app.auditor(), "{}").await).await, forbidden);
    let nobody = app.token("mallory", &[]);
    assert_eq!(mde_error(app.get("/api/machineactions", &nobody).await).await, forbidden);
    let r = app.http.delete(app.url("/api/machineactions")).bearer_auth(app.auditor()).send().await.unwrap();
    assert_eq!(r.headers()["allow"], "GET,HEAD", "RFC 9110 (and Schemathesis) want the methods a 405 path takes");
    assert_eq!(mde_error(r).await.0, StatusCode::METHOD_NOT_ALLOWED);

    // A second request while the first is open: what MDE answers a duplicate unisolate.
    created(app, SEEDED).await;
    let r = unisolate(app, SEEDED, &app.token("carol", &[REQUESTER]), POWERSHELL_BODY).await;
    assert_eq!(mde_error(r).await, (StatusCode::BAD_REQUEST, "ActiveRequestAlreadyExists".into()));
    assert_eq!(app.audit_actions("release_requested").await.len(), 1, "no refusal stored a release");
}

#[tokio::test]
async fn the_versioned_prefix_and_a_lower_case_comment_work_as_on_mde() {
    let mde = compat_app().await;
    let app = &mde.app;
    let url = format!("{}/api/v1.0/machines/{SEEDED}/unisolate", app.base);
    let r = app.http.post(url).bearer_auth(app.requester()).json(&json!({"comment": "reimaged and clean"}));
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let r = app.get(&format!("/api/v1.0/machineactions/{id}"), &app.requester()).await;
    assert_eq!(r.json::<Value>().await.unwrap()["requestorComment"], "reimaged and clean");
}

#[tokio::test]
async fn without_the_setting_the_mde_routes_are_unknown_routes() {
    let app = spawn_app().await;
    let r = unisolate(&app, SEEDED, &app.requester(), POWERSHELL_BODY).await;
    assert_eq!(error_code(r).await, (StatusCode::NOT_FOUND, "not_found".into()));
    let r = app.get("/api/machineactions", &app.auditor()).await;
    assert_eq!(error_code(r).await, (StatusCode::NOT_FOUND, "not_found".into()));
    assert_eq!(app.count("SELECT COUNT(*) FROM releases").await, 0);
}
