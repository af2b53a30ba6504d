//! The simulator's wire behaviour, checked with raw HTTP: field order, timestamps, error
//! bodies, validation, lifecycle, cancel, OData paging and its own rate limit.

mod mde_support;

use std::time::Duration;

use dualkey::mde::ActionStatus;
use dualkey::mde::simulator::{
    DEV_CLIENT_ID, DEV_CLIENT_SECRET, DuplicateBehavior, NotIsolatedBehavior, RouteKind, SeedMachine, SimulatorConfig,
    SimulatorHandle,
};
use mde_support::*;
use serde_json::{Value, json};

async fn token(sim: &SimulatorHandle) -> String {
    let answer: Value = reqwest::Client::new()
        .post(sim.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEV_CLIENT_ID),
            ("client_secret", DEV_CLIENT_SECRET),
            ("scope", SCOPE),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["expires_in"], 3599);
    answer["access_token"].as_str().unwrap().to_owned()
}

async fn post(sim: &SimulatorHandle, path: &str, body: Value) -> (u16, String) {
    let token = token(sim).await;
    let answer = reqwest::Client::new()
        .post(format!("{}{path}", sim.base_url()))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

async fn get(sim: &SimulatorHandle, path: &str) -> (u16, Value) {
    let token = token(sim).await;
    let answer =
        reqwest::Client::new().get(format!("{}{path}", sim.base_url())).bearer_auth(token).send().await.unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

fn is_seven_digit_utc(s: &str) -> bool {
    let (_, fraction) = s.split_once('.').unwrap();
    fraction.len() == 8 && fraction.ends_with('Z')
}

#[tokio::test]
async fn a_created_unisolate_has_the_real_field_set_in_the_real_order() {
    let sim = start(fast_config()).await;
    let path = format!("/api/machines/{MACHINE}/unisolate");
    let (status, text) = post(&sim, &path, json!({"Comment": "release r-1"})).await;
    assert_eq!(status, 201);
    let order = [
        "@odata.context",
        "id",
        "type",
        "title",
        "requestor",
        "requestorComment",
        "status",
        "machineId",
        "computerDnsName",
        "creationDateTimeUtc",
        "lastUpdateDateTimeUtc",
        "cancellationRequestor",
        "cancellationComment",
        "cancellationDateTimeUtc",
        "errorHResult",
        "scope",
        "externalId",
        "requestSource",
        "relatedFileInfo",
        "commands",
        "troubleshootInfo",
    ];
    let positions: Vec<usize> =
        order.iter().map(|f| text.find(&format!("\"{f}\":")).unwrap_or_else(|| panic!("{f} missing"))).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["type"], "Unisolate");
    assert_eq!(body["status"], "Pending");
    assert_eq!(body["scope"], Value::Null);
    assert_eq!(body["requestSource"], "PublicApi");
    assert!(body["@odata.context"].as_str().unwrap().ends_with("/api/$metadata#MachineActions/$entity"));
    assert!(is_seven_digit_utc(body["creationDateTimeUtc"].as_str().unwrap()));
    assert!(uuid::Uuid::parse_str(body["id"].as_str().unwrap()).is_ok());
}

#[tokio::test]
async fn the_comment_is_required_and_case_sensitive() {
    let sim = start(fast_config()).await;
    let path = format!("/api/machines/{MACHINE}/unisolate");
    let (status, text) = post(&sim, &path, json!({})).await;
    assert_eq!(status, 400);
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], "MissingRequiredParameter");
    assert_eq!(body["error"]["message"], "Parameter Comment is missing.");
    let (status, text) = post(&sim, &path, json!({"comment": "x"})).await;
    assert_eq!(status, 400);
    assert!(text.contains("\"InvalidRequestBody\""));
    assert_eq!(sim.unisolate_count(MACHINE), 0);
}

#[tokio::test]
async fn a_missing_bearer_is_401_and_every_error_has_a_fresh_target() {
    let sim = start(fast_config()).await;
    let mut targets = Vec::new();
    for _ in 0..2 {
        let answer = reqwest::get(format!("{}/api/machines/{MACHINE}", sim.base_url())).await.unwrap();
        assert_eq!(answer.status().as_u16(), 401);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"]["code"], "Unauthorized");
        targets.push(body["error"]["target"].as_str().unwrap().to_owned());
    }
    assert_ne!(targets[0], targets[1]);
}

#[tokio::test]
async fn the_versioned_prefix_serves_the_same_api() {
    let sim = start(fast_config()).await;
    let (status, body) = get(&sim, &format!("/api/v1.0/machines/{MACHINE}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], MACHINE);
    assert!(body.get("isolated").is_none() && body.get("isolationState").is_none());
}

#[tokio::test]
async fn a_machine_configured_to_fail_ends_its_action_failed() {
    let mut machine = SeedMachine::isolated(&"ab".repeat(20), "failing.contoso.com");
    machine.final_status = ActionStatus::Failed;
    let clock = dualkey::clock::ManualClock::new();
    let sim = start_on(SimulatorConfig { machines: vec![machine], ..fast_config() }, &clock).await;
    let client = client_on(&sim, &clock);
    let action = client.unisolate(&"ab".repeat(20), "release").await.unwrap();
    let done = poll_until_final(&client, &clock, &action.id).await;
    assert_eq!(done.status, Some(ActionStatus::Failed));
}

#[tokio::test]
async fn cancel_moves_a_pending_action_to_cancelled_with_its_cancellation_fields() {
    let config = SimulatorConfig { pending_for: Duration::from_secs(600), ..fast_config() };
    let sim = start(config).await;
    let client = client_for(&sim);
    let action = client.unisolate(MACHINE, "release").await.unwrap();
    let cancelled = client.cancel_action(&action.id, "changed my mind").await.unwrap();
    assert_eq!(cancelled.status, Some(ActionStatus::Cancelled));
    assert_eq!(cancelled.cancellation_comment.as_deref(), Some("changed my mind"));
    assert!(cancelled.cancellation_date_time_utc.is_some());
    // No longer active, so a new unisolate is accepted.
    client.unisolate(MACHINE, "release again").await.unwrap();
    assert_eq!(sim.unisolate_count(MACHINE), 2);
}

#[tokio::test]
async fn list_actions_pages_with_top_and_skip_newest_first() {
    let clock = dualkey::clock::ManualClock::new();
    let sim = start_on(fast_config(), &clock).await;
    let client = client_on(&sim, &clock);
    for n in 0..3 {
        let a = client.unisolate(MACHINE, &format!("release {n}")).await.unwrap();
        poll_until_final(&client, &clock, &a.id).await;
    }
    let filter = format!("machineId eq '{MACHINE}' and type eq 'Unisolate'");
    let path = format!("/api/machineactions?$filter={filter}&$top=2&$skip=1");
    let (status, body) = get(&sim, &path).await;
    assert_eq!(status, 200);
    let comments: Vec<_> =
        body["value"].as_array().unwrap().iter().map(|a| a["requestorComment"].as_str().unwrap().to_owned()).collect();
    assert_eq!(comments, ["release 1", "release 0"]);
    let (status, body) = get(&sim, "/api/machineactions?$filter=computerDnsName eq 'x'").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "ODataError");
}

#[tokio::test]
async fn the_rate_limit_is_per_api_and_counted_in_a_rolling_minute() {
    let sim = start(SimulatorConfig { rate_per_minute: 3, ..fast_config() }).await;
    let token = token(&sim).await;
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let answer =
            http.get(format!("{}/api/machines/{MACHINE}", sim.base_url())).bearer_auth(&token).send().await.unwrap();
        if answer.status().as_u16() == 429 {
            let retry_after: u64 = answer.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry_after));
        }
        statuses.push(answer.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let (status, _) = get(&sim, "/api/machineactions").await;
    assert_eq!(status, 200, "another API has its own budget");
    assert_eq!(sim.max_calls_in_rolling_minute(RouteKind::GetMachine), 5);
}

#[tokio::test]
async fn the_rate_window_and_token_lifetimes_run_on_the_simulators_clock() {
    let clock = dualkey::clock::ManualClock::new();
    let sim = start_on(SimulatorConfig { rate_per_minute: 3, ..fast_config() }, &clock).await;
    let token = token(&sim).await;
    let http = reqwest::Client::new();
    let call = async || {
        let url = format!("{}/api/machines/{MACHINE}", sim.base_url());
        http.get(url).bearer_auth(&token).send().await.unwrap().status().as_u16()
    };
    for _ in 0..3 {
        assert_eq!(call().await, 200);
    }
    assert_eq!(call().await, 429);
    clock.advance(Duration::from_secs(60));
    assert_eq!(call().await, 200, "the first calls left the window as the clock moved a minute");
    clock.advance(sim.config().token_lifetime);
    assert_eq!(call().await, 401, "the token expired as the clock moved past its lifetime");
}

#[tokio::test]
async fn in_return_existing_mode_a_duplicate_unisolate_gets_the_pending_action_back() {
    let config = SimulatorConfig {
        pending_for: Duration::from_secs(600),
        duplicate: DuplicateBehavior::ReturnExisting,
        ..fast_config()
    };
    let sim = start(config).await;
    let client = client_for(&sim);
    let first = client.unisolate(MACHINE, "release r-5").await.unwrap();
    let second = client.unisolate(MACHINE, "release r-5 again").await.unwrap();
    assert_eq!(second.id, first.id);
    assert_eq!(second.requestor_comment.as_deref(), Some("release r-5"));
    assert_eq!(sim.unisolate_count(MACHINE), 1);
}

#[tokio::test]
async fn in_reject_mode_unisolating_a_machine_that_is_not_isolated_is_a_400() {
    let mut free = SeedMachine::isolated(&"cd".repeat(20), "free.contoso.com");
    free.isolated = false;
    let config = SimulatorConfig { machines: vec![free], not_isolated: NotIsolatedBehavior::Reject, ..fast_config() };
    let sim = start(config).await;
    let err = client_for(&sim).unisolate(&"cd".repeat(20), "release").await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(!err.is_retryable());
    assert!(sim.actions_for(&"cd".repeat(20)).is_empty());
}
