//! Release batches through the HTTP API, against the MDE simulator: requested at once, decided
//! as one, each device under its own rule, sent fairly alongside single releases.

mod decisions;

use crate::helpers::*;
use dualkey::mde::simulator::{RouteKind, SeedMachine, SimulatorConfig};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

const COMMENT: &str = "reimaged and scanned clean";
const OWNER: &str = "Tier0.Owner";
const UNKNOWN: &str = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
const LOOSE: &str = "10000000000000000000000000000000000000ff";
const RISKY: &str = "bad00000000000000000000000000000000000ff";
const DC1: &str = "dc000000000000000000000000000000000000a1";
const DC2: &str = "dc000000000000000000000000000000000000a2";

const POLICY: &str = r#"
approvals_required = 1
request_ttl = "24h"
min_comment_len = 10

[[rules]]
name = "high-risk"
match = { risk_scores = ["High"] }
deny = "High-risk devices are released only after the incident is closed in MDE"

[[rules]]
name = "tier0"
match = { tags = ["Tier0"] }
require = [ { role = "Release.Approve", count = 1 }, { role = "Tier0.Owner", count = 1 } ]
"#;

/// The test simulator plus a device that is not isolated, a high-risk one and two tagged Tier0.
fn batch_simulator() -> SimulatorConfig {
    let mut config = test_simulator();
    let loose = SeedMachine { isolated: false, ..SeedMachine::isolated(LOOSE, "laptop-loose.contoso.com") };
    let mut risky = SeedMachine::isolated(RISKY, "laptop-risky.contoso.com");
    risky.risk_score = "High".into();
    let mut dcs = [SeedMachine::isolated(DC1, "dc01.contoso.com"), SeedMachine::isolated(DC2, "dc02.contoso.com")];
    for dc in &mut dcs {
        dc.machine_tags = vec!["Tier0".into()];
        dc.rbac_group_name = "Domain Controllers".into();
    }
    config.machines.extend([loose, risky]);
    config.machines.extend(dcs);
    config
}

fn with_policy(text: &str) -> impl FnOnce(&mut dualkey::settings::Settings) + use<> {
    let value: toml::Value = toml::from_str(text).unwrap();
    move |s| s.policy = dualkey::rules::PolicyDocument::from_toml(value).unwrap()
}

async fn app_with(text: &str) -> MdeApp {
    spawn_with_mde(batch_simulator(), with_policy(text)).await
}

fn machines(ns: impl IntoIterator<Item = u32>) -> Vec<String> {
    ns.into_iter().map(machine).collect()
}

async fn post_batch(app: &TestApp, token: &str, body: Value) -> Response {
    app.post("/api/v1/release-batches", token, body).await
}

/// Requests a batch of `ids` as alice; returns its JSON.
async fn batch_of(app: &TestApp, ids: &[String]) -> Value {
    let r = post_batch(app, &app.requester(), json!({"machine_ids": ids, "comment": COMMENT})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = r.headers()[reqwest::header::LOCATION].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(location, format!("/api/v1/release-batches/{}", body["id"].as_str().unwrap()));
    body
}

async fn decide(app: &TestApp, id: &str, what: &str, token: &str, body: Value) -> Response {
    app.post(&format!("/api/v1/release-batches/{id}/{what}"), token, body).await
}

/// A batch decision that answered 200; its JSON.
async fn decided(app: &TestApp, id: &str, what: &str, token: &str, body: Value) -> Value {
    let r = decide(app, id, what, token, body).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn show(app: &TestApp, id: &str) -> Value {
    let r = app.get(&format!("/api/v1/release-batches/{id}"), &app.auditor()).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// The results of a decision as `(machine_id, applied, status, code)`.
fn outcomes(v: &Value) -> Vec<(String, bool, String, Option<String>)> {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["machine_id"].as_str().unwrap().to_string(),
                o["applied"].as_bool().unwrap(),
                o["status"].as_str().unwrap().to_string(),
                o["code"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn applied(m: &str, status: &str) -> (String, bool, String, Option<String>) {
    (m.to_string(), true, status.to_string(), None)
}

fn refused(m: &str, status: &str, code: &str) -> (String, bool, String, Option<String>) {
    (m.to_string(), false, status.to_string(), Some(code.to_string()))
}

#[tokio::test]
async fn a_batch_by_list_stores_one_pending_release_per_device_and_lists_the_devices_it_cannot_take() {
    let m = app_with(POLICY).await;
    let app = &m.app;
    let single = app.create_release(3).await;
    let asked = [machine(1), machine(2), machine(3), UNKNOWN.into(), LOOSE.into(), RISKY.into(), machine(1)];
    let body = batch_of(app, &asked).await;
    assert_eq!(body["counts"], json!({"pending": 2}));
    let releases = body["releases"].as_array().unwrap();
    let taken: Vec<&str> = releases.iter().map(|r| r["machine_id"].as_str().unwrap()).collect();
    assert_eq!(taken, [machine(1), machine(2)], "duplicates collapse to one");
    assert!(releases.iter().all(|r| r["status"] == "pending"));
    let codes: Vec<(&str, &str)> = body["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["machine_id"].as_str().unwrap(), r["code"].as_str().unwrap()))
        .collect();
    let m3 = machine(3);
    assert_eq!(
        codes,
        [
            (m3.as_str(), "release_already_open"),
            (UNKNOWN, "unknown_machine"),
            (LOOSE, "device_not_isolated"),
            (RISKY, "denied_by_policy")
        ]
    );
    assert!(body["refused"][0]["message"].as_str().unwrap().contains(single["id"].as_str().unwrap()));
    assert_eq!(body["refused"][3]["rule"], "high-risk");
    assert!(body["refused"][3]["message"].as_str().unwrap().contains("incident is closed"));
    assert_eq!(body["requested_by"], "alice");
    assert_eq!(body["comment"], COMMENT);
    assert_eq!(body["selector"], Value::Null);

    let batch_id = id_of(&body);
    let member = app.release(releases[0]["id"].as_str().unwrap()).await;
    assert_eq!(member["batch_id"], batch_id.as_str());
    assert_eq!(member["status"], "pending");
    assert_eq!(member["comment"], COMMENT);
    assert_eq!(app.release(single["id"].as_str().unwrap()).await["batch_id"], Value::Null);
    assert_eq!(show(app, &batch_id).await["counts"], json!({"pending": 2}));

    let requested = app.audit_actions("batch_requested").await;
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0]["details"]["batch_id"], batch_id.as_str());
    assert_eq!(requested[0]["details"]["count"], 2);
    assert_eq!(requested[0]["details"]["refused"].as_array().unwrap().len(), 4);
    assert_eq!(requested[0]["actor"], "alice");
    let in_batch: Vec<Value> = app
        .audit_actions("release_requested")
        .await
        .into_iter()
        .filter(|e| e["details"]["batch_id"] == batch_id.as_str())
        .collect();
    assert_eq!(in_batch.len(), 2, "each release has its own release_requested");
    assert_eq!(app.count("SELECT COUNT(*) FROM release_batches").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM releases").await, 3);
}

#[tokio::test]
async fn a_batch_of_more_than_1000_ids_is_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let ids = machines(0..1001);
    let r = post_batch(&app, &app.requester(), json!({"machine_ids": ids, "comment": COMMENT})).await;
    assert_eq!(error_code(r).await, (StatusCode::UNPROCESSABLE_ENTITY, "batch_too_large".into()));
    assert_eq!(app.count("SELECT COUNT(*) FROM releases").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM release_batches").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE action != 'policy_loaded'").await, 0);
    assert_eq!(app.sim.count(RouteKind::GetMachine), 0, "refused before any device is read");
}

#[tokio::test]
async fn a_batch_where_no_device_can_be_taken_is_422_with_the_refusals_and_stores_only_its_audit_entry() {
    let m = app_with(POLICY).await;
    let app = &m.app;
    let r =
        post_batch(app, &app.requester(), json!({"machine_ids": [UNKNOWN, LOOSE, RISKY], "comment": COMMENT})).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "nothing_to_release");
    let codes: Vec<&str> =
        body["error"]["refused"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["unknown_machine", "device_not_isolated", "denied_by_policy"]);
    assert_eq!(app.count("SELECT COUNT(*) FROM releases").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM release_batches").await, 0);
    let refused = app.audit_actions("batch_request_refused").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["details"]["reason"], "nothing_to_release");
    assert_eq!(refused[0]["details"]["refused"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_batch_that_would_pass_the_request_limit_is_refused_whole_with_retry_after() {
    let policy = format!("max_requests_per_requester_per_hour = 3\n{POLICY}");
    let m = app_with(&policy).await;
    let app = &m.app;
    app.create_release(9).await;
    let r = post_batch(app, &app.requester(), json!({"machine_ids": machines(1..4), "comment": COMMENT})).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()[reqwest::header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((3500..=3600).contains(&retry), "when the single request leaves the hour: {retry}");
    assert_eq!(error_code(r).await.1, "request_rate_exceeded");
    assert_eq!(app.count("SELECT COUNT(*) FROM releases").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM release_batches").await, 0);
    let refused = app.audit_actions("batch_request_refused").await;
    assert_eq!(refused[0]["details"]["reason"], "request_rate_exceeded");
    assert_eq!(refused[0]["details"]["count"], 3);
    batch_of(app, &machines(1..3)).await;
}

#[tokio::test]
async fn reading_batches_and_their_errors() {
    let app = spawn_app().await;
    let older = id_of(&batch_of(&app, &machines(1..3)).await);
    let newer = id_of(&batch_of(&app, &machines(3..4)).await);
    let r = app.get("/api/v1/release-batches", &app.approver("bob")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let page: Value = r.json().await.unwrap();
    let listed: Vec<&str> = page["items"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(listed, [newer.as_str(), older.as_str()], "newest first");
    assert_eq!(page["items"][1]["counts"], json!({"pending": 2}));
    assert_eq!(page["next_cursor"], Value::Null);

    let r = app.get(&format!("/api/v1/release-batches/{older}"), &app.token("nobody", &[])).await;
    assert_eq!(error_code(r).await, (StatusCode::FORBIDDEN, "missing_role".into()));
    let glass_only = app.token("alice", &["Release.BreakGlass"]);
    let r = app.get(&format!("/api/v1/release-batches/{older}"), &glass_only).await;
    assert_eq!(r.status(), StatusCode::OK, "its requester reads it whatever roles they hold");
    let r = app.get("/api/v1/release-batches/not-a-uuid", &app.auditor()).await;
    assert_eq!(error_code(r).await, (StatusCode::BAD_REQUEST, "invalid_batch_id".into()));
    let unknown = "01900000-0000-7000-8000-000000000000";
    let r = app.get(&format!("/api/v1/release-batches/{unknown}"), &app.auditor()).await;
    assert_eq!(error_code(r).await, (StatusCode::NOT_FOUND, "batch_not_found".into()));
    let r = decide(&app, unknown, "approve", &app.approver("bob"), json!({})).await;
    assert_eq!(error_code(r).await, (StatusCode::NOT_FOUND, "batch_not_found".into()));
    let r = app.get("/api/v1/release-batches?limit=1", &app.auditor()).await;
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let r = app.get(&format!("/api/v1/release-batches?limit=1&cursor={cursor}"), &app.auditor()).await;
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["items"][0]["id"], older.as_str());
    let r = app.get("/api/v1/release-batches", &app.token("mallory", &["Release.BreakGlass"])).await;
    assert_eq!(r.json::<Value>().await.unwrap()["items"], json!([]), "a non-reader lists only their own");

    // A batch is a record: the database refuses to change or remove it, or to move a release.
    let pool = app.raw_db().await;
    for sql in [
        "DELETE FROM release_batches",
        "UPDATE release_batches SET comment = 'rewritten history'",
        "UPDATE releases SET batch_id = NULL",
    ] {
        let e = sqlx::query(sql).execute(&pool).await.unwrap_err().to_string();
        assert!(e.contains("append-only") || e.contains("never changes batch"), "{sql}: {e}");
    }
}

#[tokio::test]
async fn bad_batch_requests_are_4xx_with_a_clear_code_and_store_nothing() {
    let app = spawn_app().await;
    let alice = app.requester();
    let two = machines(1..3);
    let cases = [
        (json!({"comment": COMMENT}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_target"),
        (
            json!({"machine_ids": two, "selector": {"tags": ["x"]}, "comment": COMMENT}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_target",
        ),
        (json!({"machine_ids": [], "comment": COMMENT}), StatusCode::UNPROCESSABLE_ENTITY, "empty_batch"),
        (json!({"selector": {}, "comment": COMMENT}), StatusCode::UNPROCESSABLE_ENTITY, "empty_selector"),
        (
            json!({"selector": {"rbac_groups": [], "tags": []}, "comment": COMMENT}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_selector",
        ),
        (
            json!({"selector": {"tags": ["  "]}, "comment": COMMENT}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_selector",
        ),
        (
            json!({"selector": {"tags": ["a"], "colour": ["red"]}, "comment": COMMENT}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"machine_ids": two, "comment": COMMENT, "break_glass": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (json!({"machine_ids": two}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (json!({"machine_ids": two, "comment": "short"}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_comment"),
        (json!({"machine_ids": "all", "comment": COMMENT}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
    ];
    for (body, status, code) in cases {
        let r = post_batch(&app, &alice, body.clone()).await;
        assert_eq!(error_code(r).await, (status, code.into()), "{body}");
    }
    let r =
        post_batch(&app, &alice, json!({"machine_ids": [machine(1), "not-hex", machine(2)], "comment": COMMENT})).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_machine_id");
    assert_eq!(body["error"]["index"], 1);
    assert!(body["error"]["message"].as_str().unwrap().contains("machine_ids[1]"));
    let r = post_batch(&app, &app.approver("bob"), json!({"machine_ids": two, "comment": COMMENT})).await;
    assert_eq!(error_code(r).await, (StatusCode::FORBIDDEN, "missing_role".into()));
    assert_eq!(app.count("SELECT COUNT(*) FROM releases").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM release_batches").await, 0);

    let id = id_of(&batch_of(&app, &two).await);
    let r = decide(&app, &id, "approve", &app.auditor(), json!({})).await;
    assert_eq!(error_code(r).await, (StatusCode::FORBIDDEN, "missing_role".into()));
    let r = decide(&app, &id, "reject", &app.requester(), json!({"comment": "I changed my mind about it"})).await;
    assert_eq!(error_code(r).await, (StatusCode::FORBIDDEN, "missing_role".into()));
    let r = decide(&app, &id, "approve", &app.approver("bob"), json!({"comment": "ok", "force": true})).await;
    assert_eq!(error_code(r).await, (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body".into()));
    let r = decide(&app, &id, "cancel", &alice, json!({"reason": "x"})).await;
    assert_eq!(error_code(r).await, (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body".into()));
    assert_eq!(show(&app, &id).await["counts"], json!({"pending": 2}));
    assert_eq!(app.count("SELECT COUNT(*) FROM approvals").await, 0);
}

#[tokio::test]
async fn an_unreachable_mde_refuses_the_batch_and_stores_nothing() {
    let app = spawn_app().await;
    // A batch reads MDE's device list in bulk.
    app.sim.inject(RouteKind::ListMachines, dualkey::mde::simulator::FaultAction::status(503), 1);
    let r = post_batch(&app, &app.requester(), json!({"machine_ids": machines(1..3), "comment": COMMENT})).await;
    assert_eq!(error_code(r).await, (StatusCode::SERVICE_UNAVAILABLE, "mde_unavailable".into()));
    assert_eq!(app.count("SELECT COUNT(*) FROM releases").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM release_batches").await, 0);
}

#[tokio::test]
async fn a_selector_by_tag_takes_exactly_the_isolated_devices_carrying_it() {
    let m = app_with(POLICY).await;
    let app = &m.app;
    let r = post_batch(app, &app.requester(), json!({"selector": {"tags": ["tier0"]}, "comment": COMMENT})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.unwrap();
    let mut taken: Vec<&str> =
        body["releases"].as_array().unwrap().iter().map(|r| r["machine_id"].as_str().unwrap()).collect();
    taken.sort();
    assert_eq!(taken, [DC1, DC2], "tags compare without case");
    assert_eq!(body["selector"], json!({"rbac_groups": [], "tags": ["tier0"]}));
    assert_eq!(body["refused"], json!([]));
    let requested = app.audit_actions("batch_requested").await;
    assert_eq!(requested[0]["details"]["selector"]["tags"], json!(["tier0"]));
}

#[tokio::test]
async fn a_selector_by_group_lists_matching_devices_with_an_open_release_as_refused() {
    let m = app_with(POLICY).await;
    let app = &m.app;
    let r = app.post("/api/v1/releases", &app.requester(), json!({"machine_id": DC1, "comment": COMMENT})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let body = json!({"selector": {"rbac_groups": ["Domain Controllers"]}, "comment": COMMENT});
    let r = post_batch(app, &app.requester(), body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.unwrap();
    let taken: Vec<&str> =
        body["releases"].as_array().unwrap().iter().map(|r| r["machine_id"].as_str().unwrap()).collect();
    assert_eq!(taken, [DC2]);
    assert_eq!(body["refused"][0]["machine_id"], DC1);
    assert_eq!(body["refused"][0]["code"], "release_already_open");
}
