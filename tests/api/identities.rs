//! Look-alike identities are one person for every separation-of-duties check, and identity
//! claims that hide a difference (padding, invisible characters) are refused.

use crate::helpers::*;
use dualkey::mde::simulator::{SeedMachine, SimulatorConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

const KIOSK: &str = "c105c00000000000000000000000000000000001";

const POLICY: &str = r#"
approvals_required = 2
request_ttl = "24h"
min_comment_len = 10
max_requests_per_requester_per_hour = 2
max_approvals_per_approver_per_hour = 1

[[rules]]
name = "kiosks"
match = { computer_dns_names = ["kiosk-*"] }
exclude_isolator = true
"#;

async fn app() -> TestApp {
    let mut config: SimulatorConfig = test_simulator();
    config.machines.push(SeedMachine::isolated(KIOSK, "kiosk-lobby-02.contoso.com"));
    let value: toml::Value = toml::from_str(POLICY).unwrap();
    spawn_with_simulator(config, move |s| s.policy = dualkey::rules::PolicyDocument::from_toml(value).unwrap()).await
}

async fn request(app: &TestApp, token: &str, machine_id: &str) -> reqwest::Response {
    app.post("/api/v1/releases", token, json!({"machine_id": machine_id, "comment": "reimaged and scanned clean"}))
        .await
}

async fn requested_id(app: &TestApp, machine_id: &str) -> String {
    let r = request(app, &app.requester(), machine_id).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn no_look_alike_of_the_requester_can_approve_her_release() {
    let app = app().await;
    let id = requested_id(&app, &machine(1)).await;
    for alike in ["ALICE", "Alice", "\u{430}lice", "ａｌｉｃｅ"] {
        let r = app.approve(&id, &app.approver(alike)).await;
        assert_eq!(error_code(r).await, (StatusCode::FORBIDDEN, "self_approval_forbidden".into()), "{alike:?}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM approvals").await, 0);
    assert_eq!(app.release(&id).await["status"], "pending");
}

#[tokio::test]
async fn an_identity_claim_with_padding_or_invisible_characters_is_401_invalid_principal() {
    let app = app().await;
    let id = requested_id(&app, &machine(1)).await;
    let claims = [
        json!({"sub": "alice ", "roles": [APPROVER]}),
        json!({"sub": " alice", "roles": [APPROVER]}),
        json!({"sub": "alice\u{200b}", "roles": [APPROVER]}),
        json!({"sub": "ali\u{0007}ce", "roles": [APPROVER]}),
        json!({"sub": "al\u{202e}ice", "roles": [APPROVER]}),
        json!({"sub": "", "roles": [APPROVER]}),
        json!({"sub": "bob", "roles": [APPROVER], "upn": "analyst@contoso.onmicrosoft.com "}),
        json!({"sub": "bob", "roles": [APPROVER], "upn": "analyst\u{200b}@contoso.onmicrosoft.com"}),
        json!({"sub": "bob", "roles": [APPROVER], "preferred_username": "\u{feff}analyst@contoso.onmicrosoft.com"}),
    ];
    for claims in claims {
        let r = app.approve(&id, &app.token_with(claims.clone())).await;
        assert_eq!(error_code(r).await, (StatusCode::UNAUTHORIZED, "invalid_principal".into()), "{claims}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM approvals").await, 0);
}

#[tokio::test]
async fn bob_and_bob_in_capitals_cannot_fill_two_seats() {
    let app = app().await;
    let id = requested_id(&app, &machine(1)).await;
    assert_eq!(app.approve(&id, &app.approver("bob")).await.status(), StatusCode::OK);
    for alike in ["BOB", "b\u{43e}b", "ｂｏｂ"] {
        let r = app.approve(&id, &app.approver(alike)).await;
        assert_eq!(error_code(r).await, (StatusCode::CONFLICT, "already_approved".into()), "{alike:?}");
    }
    assert_eq!(app.release(&id).await["status"], "pending");
    assert_eq!(app.count("SELECT COUNT(*) FROM approvals").await, 1);
    assert_eq!(app.approve(&id, &app.approver("carol")).await.status(), StatusCode::OK);
    assert_eq!(app.release(&id).await["status"], "approved");
}

#[tokio::test]
async fn an_isolator_with_a_look_alike_upn_is_still_excluded() {
    let app = app().await;
    let id = requested_id(&app, KIOSK).await;
    assert_eq!(app.release(&id).await["policy"]["isolated_by"], "analyst@contoso.onmicrosoft.com");
    for upn in [
        "ANALYST@contoso.onmicrosoft.com",
        "analyst@c\u{43e}ntoso.onmicrosoft.com",
        "ａｎａｌｙｓｔ@contoso.onmicrosoft.com",
    ] {
        let token = app.token_with(json!({"sub": "oid-of-analyst", "roles": [APPROVER], "upn": upn}));
        let r = app.approve(&id, &token).await;
        assert_eq!(error_code(r).await, (StatusCode::FORBIDDEN, "isolator_excluded".into()), "{upn:?}");
    }
    let by_id = app.approver("Analyst@Contoso.onmicrosoft.com");
    assert_eq!(error_code(app.approve(&id, &by_id).await).await, (StatusCode::FORBIDDEN, "isolator_excluded".into()));
    assert_eq!(app.count("SELECT COUNT(*) FROM approvals").await, 0);
}

#[tokio::test]
async fn velocity_guards_count_look_alikes_as_one_person() {
    let app = app().await;
    requested_id(&app, &machine(1)).await;
    let r = request(&app, &app.token("ALICE", &[REQUESTER]), &machine(2)).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = request(&app, &app.token("\u{430}lice", &[REQUESTER]), &machine(3)).await;
    assert_eq!(error_code(r).await, (StatusCode::TOO_MANY_REQUESTS, "request_rate_exceeded".into()));
    let r = request(&app, &app.token("ａｌｉｃｅ", &[REQUESTER]), &machine(3)).await;
    assert_eq!(error_code(r).await, (StatusCode::TOO_MANY_REQUESTS, "request_rate_exceeded".into()));
    assert_eq!(app.count("SELECT COUNT(*) FROM releases").await, 2);

    let first = app.get("/api/v1/releases?limit=10", &app.auditor()).await.json::<Value>().await.unwrap();
    let ids: Vec<String> =
        first["items"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().into()).collect();
    assert_eq!(app.approve(&ids[0], &app.approver("bob")).await.status(), StatusCode::OK);
    let r = app.approve(&ids[1], &app.approver("BOB")).await;
    assert_eq!(error_code(r).await, (StatusCode::TOO_MANY_REQUESTS, "approval_rate_exceeded".into()));
    assert_eq!(approvals_by(&app, "BOB").await, 0);
    // Someone else has their own window.
    assert_eq!(app.approve(&ids[1], &app.approver("carol")).await.status(), StatusCode::OK);
}

async fn approvals_by(app: &TestApp, who: &str) -> i64 {
    let pool = app.raw_db().await;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM approvals WHERE approver = $1")
        .bind(who)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}
