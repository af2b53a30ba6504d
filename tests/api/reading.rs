//! Who reads what: a requester reads their own releases whatever their roles, the queue of
//! releases waiting for the caller, and token times checked on the daemon's clock.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const GLASS: &str = "Release.BreakGlass";
const LONG: &str = "Ransomware cleanup verified; payroll server must be back before the bank cutoff";

async fn ids(app: &TestApp, query: &str, token: &str) -> Vec<String> {
    let r = app.get(&format!("/api/v1/releases{query}"), token).await;
    assert_eq!(r.status(), StatusCode::OK, "{query}");
    let body: Value = r.json().await.unwrap();
    body["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn a_break_glass_holder_with_no_other_role_reads_their_own_release_and_no_one_elses() {
    let value: toml::Value = toml::from_str("[break_glass]\nenabled = true\n").unwrap();
    let app = spawn_app_with(|s| s.policy = dualkey::rules::PolicyDocument::from_toml(value).unwrap()).await;
    let bree = app.token("bree", &[GLASS]);
    let r = app
        .post("/api/v1/releases", &bree, json!({"machine_id": machine(1), "comment": LONG, "break_glass": true}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let own = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let other = app.create_release(2).await["id"].as_str().unwrap().to_string();

    assert_eq!(app.get(&format!("/api/v1/releases/{own}"), &bree).await.status(), StatusCode::OK);
    let r = app.get(&format!("/api/v1/releases/{other}"), &bree).await;
    assert_eq!(error_code(r).await, (StatusCode::FORBIDDEN, "missing_role".into()));
    // Nor may she learn whether an id exists.
    let r = app.get("/api/v1/releases/01939a7e-0000-7000-8000-000000000000", &bree).await;
    assert_eq!(error_code(r).await, (StatusCode::FORBIDDEN, "missing_role".into()));
    assert_eq!(ids(&app, "", &bree).await, std::slice::from_ref(&own), "the list holds only her own");
    let r = app.get("/api/v1/releases?requested_by=alice", &bree).await;
    assert_eq!(error_code(r).await, (StatusCode::FORBIDDEN, "missing_role".into()));
    // A look-alike of her id reads nothing of hers.
    let r = app.get(&format!("/api/v1/releases/{own}"), &app.token("BREE", &[GLASS])).await;
    assert_eq!(error_code(r).await, (StatusCode::FORBIDDEN, "missing_role".into()));
}

#[tokio::test]
async fn waiting_for_me_lists_what_the_caller_may_approve_and_mine_what_they_asked_for() {
    let app = spawn_app().await;
    let first = app.create_release(1).await["id"].as_str().unwrap().to_string();
    let second = app.create_release(2).await["id"].as_str().unwrap().to_string();
    let bob = app.approver("bob");
    assert_eq!(ids(&app, "?waiting_for_me=true", &bob).await, [second.clone(), first.clone()]);
    assert!(ids(&app, "?waiting_for_me=true", &app.requester()).await.is_empty(), "not her own");
    assert!(ids(&app, "?waiting_for_me=true", &app.auditor()).await.is_empty(), "no approver role");

    assert_eq!(app.approve(&first, &bob).await.status(), StatusCode::OK);
    assert_eq!(
        ids(&app, "?waiting_for_me=true", &bob).await,
        std::slice::from_ref(&second),
        "approved leaves the queue"
    );
    let r = app.get("/api/v1/releases?waiting_for_me=true&limit=1", &bob).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert!(body["next_cursor"].is_null());

    assert_eq!(ids(&app, "?mine=true", &app.requester()).await, [second.clone(), first.clone()]);
    assert!(ids(&app, "?mine=true", &bob).await.is_empty());
    let r = app.get("/api/v1/releases?waiting_for_me=true&status=pending", &bob).await;
    assert_eq!(error_code(r).await, (StatusCode::BAD_REQUEST, "invalid_query".into()));
    let r = app.get("/api/v1/releases?mine=true&requested_by=carol", &bob).await;
    assert_eq!(error_code(r).await, (StatusCode::BAD_REQUEST, "invalid_query".into()));
}

#[tokio::test]
async fn a_token_expires_when_the_daemons_clock_passes_its_exp() {
    let app = spawn_app().await;
    let token = app.requester();
    assert_eq!(app.get("/api/v1/releases", &token).await.status(), StatusCode::OK);
    // Tokens live 600 s; the leeway is 60 s.
    app.clock.advance(Duration::from_secs(600 + 61));
    let r = app.get("/api/v1/releases", &token).await;
    assert_eq!(error_code(r).await, (StatusCode::UNAUTHORIZED, "invalid_token".into()));
}

#[tokio::test]
async fn client_config_is_public_and_says_where_to_sign_in() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/api/v1/client-config")).send().await.unwrap();
    assert_eq!(error_code(r).await, (StatusCode::NOT_FOUND, "oidc_not_configured".into()));

    let app = spawn_app_with(|s| {
        let toml = "issuer = \"https://idp.example/v2.0\"\nclient_id = \"console-app\"\napi_scope = \"api://dualkey/.default\"\ncli_client_id = \"cli-app\"\nclient_secret = \"do-not-publish\"\n";
        s.oidc = Some(toml::from_str(toml).unwrap());
    })
    .await;
    let r = app.http.get(app.url("/api/v1/client-config")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"issuer": "https://idp.example/v2.0", "cli_client_id": "cli-app", "api_scope": "api://dualkey/.default",
               "scopes": ["openid", "profile", "email"]})
    );
}

#[tokio::test]
async fn a_role_that_only_fills_a_policy_slot_reads_the_releases_it_may_approve() {
    let value: toml::Value = toml::from_str(
        "[[rules]]\nname = \"tier0\"\nmatch = { computer_dns_names = [\"host.contoso.com\"] }\nrequire = [ { role = \"Tier0.Owner\", count = 1 } ]\n",
    )
    .unwrap();
    let app = spawn_app_with(|s| s.policy = dualkey::rules::PolicyDocument::from_toml(value).unwrap()).await;
    let id = app.create_release(3).await["id"].as_str().unwrap().to_string();
    let olga = app.token("olga", &["Tier0.Owner"]);
    assert_eq!(ids(&app, "?waiting_for_me=true", &olga).await, std::slice::from_ref(&id));
    assert_eq!(app.get(&format!("/api/v1/releases/{id}"), &olga).await.status(), StatusCode::OK);
    let nobody = app.token("nina", &["Something.Else"]);
    assert!(ids(&app, "", &nobody).await.is_empty(), "a role no slot asks for reads only its own");
}
