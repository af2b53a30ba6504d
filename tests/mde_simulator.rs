//! The simulator's wire behaviour, checked with raw HTTP: field order, timestamps, error
//! bodies, validation, lifecycle, cancel, OData filters and paging, the portal's stand-in and
//! its own rate limit.

mod mde_support;

use std::time::Duration;

use dualkey::mde::ActionStatus;
use dualkey::mde::simulator::{
    DEV_CLIENT_ID, DEV_CLIENT_SECRET, DuplicateBehavior, NotIsolatedBehavior, RouteKind, SeedMachine, SimulatorConfig,
    SimulatorHandle, fleet,
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

/// A simulator with the five default machines and a fleet of `n` after them, on the system
/// clock.
async fn with_fleet(n: usize) -> SimulatorHandle {
    let mut config = fast_config();
    config.machines.extend(fleet(n));
    start(config).await
}

fn ids(body: &Value) -> Vec<String> {
    body["value"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
}

fn dns_names(body: &Value) -> Vec<String> {
    body["value"].as_array().unwrap().iter().map(|m| m["computerDnsName"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_machines_list_answers_every_machine_in_seed_order_with_the_entity_fields() {
    let sim = with_fleet(20).await;
    let (status, body) = get(&sim, "/api/machines").await;
    assert_eq!(status, 200);
    assert!(body["@odata.context"].as_str().unwrap().ends_with("/api/$metadata#Machines"));
    assert!(body.get("@odata.nextLink").is_none(), "one page holds them all");
    let expected: Vec<String> = sim.config().machines.iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids(&body), expected);
    let first = &body["value"][0];
    assert!(first.get("@odata.context").is_none(), "no per-entity context inside a list");
    for field in ["computerDnsName", "healthStatus", "riskScore", "rbacGroupId", "rbacGroupName", "machineTags"] {
        assert!(first.get(field).is_some(), "{field} missing");
    }
    assert_eq!(sim.count(RouteKind::ListMachines), 1);
    assert_eq!(sim.count(RouteKind::GetMachine), 0);
}

#[tokio::test]
async fn the_machines_list_filters_on_each_documented_field() {
    let sim = with_fleet(30).await;
    let names = async |filter: &str| {
        let (status, body) = get(&sim, &format!("/api/v1.0/machines?$filter={filter}")).await;
        assert_eq!(status, 200, "{filter}: {body}");
        dns_names(&body)
    };
    let tier0 = ["ws-0010.contoso.com", "ws-0020.contoso.com", "ws-0030.contoso.com"];
    assert_eq!(names("rbacGroupId eq 10").await, tier0);
    assert_eq!(names("machineTags/any(t: t eq 'TIER0')").await, tier0);
    assert_eq!(names("healthStatus eq 'Inactive'").await, ["ws-0007.contoso.com", "ws-0027.contoso.com"]);
    assert_eq!(
        names("riskScore eq 'high' and rbacGroupId eq 140").await,
        ["ws-0004.contoso.com", "ws-0008.contoso.com", "ws-0016.contoso.com", "ws-0028.contoso.com"]
    );
    assert_eq!(names(&format!("id eq '{MACHINE}'")).await, ["desktop-fin-01.contoso.com"]);
    assert_eq!(names("computerDnsName eq 'WS-0014.contoso.com'").await, ["ws-0014.contoso.com"]);
    assert_eq!(
        names("machineTags/any(t: t eq 'outbreak-2026') and healthStatus eq 'Active'").await,
        ["ws-0014.contoso.com", "ws-0021.contoso.com", "ws-0028.contoso.com"]
    );
    for bad in ["rbacGroupId eq '10'", "osPlatform eq 'Windows11'", "riskScore ne 'High'", "machineTags/any(t: t eq 1)"]
    {
        let (status, body) = get(&sim, &format!("/api/machines?$filter={bad}")).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["error"]["code"], "ODataError");
    }
}

/// Follows `@odata.nextLink` from `path`, returning each page's body.
async fn pages(sim: &SimulatorHandle, path: &str) -> Vec<Value> {
    let token = token(sim).await;
    let http = reqwest::Client::new();
    let mut url = format!("{}{path}", sim.base_url());
    let mut pages = Vec::new();
    loop {
        let answer = http.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 200);
        let body: Value = answer.json().await.unwrap();
        let next = body.get("@odata.nextLink").and_then(Value::as_str).map(str::to_owned);
        pages.push(body);
        match next {
            Some(next) => url = next,
            None => return pages,
        }
        assert!(pages.len() < 10, "a nextLink that never ends");
    }
}

#[tokio::test]
async fn a_list_pages_with_top_and_links_each_next_page_until_the_last() {
    let sim = with_fleet(20).await;
    let got = pages(&sim, "/api/machines?$top=10").await;
    assert_eq!(got.iter().map(|p| ids(p).len()).collect::<Vec<_>>(), [10, 10, 5]);
    let links: Vec<&str> = got.iter().filter_map(|p| p["@odata.nextLink"].as_str()).collect();
    assert_eq!(links.len(), 2);
    assert!(links[0].starts_with(&format!("{}/api/machines?", sim.base_url())), "{}", links[0]);
    assert!(links[0].contains("$top=10") && links[0].contains("$skip=10"), "{}", links[0]);
    assert!(links[1].contains("$skip=20"), "{}", links[1]);
    let all: Vec<String> = got.iter().flat_map(ids).collect();
    let expected: Vec<String> = sim.config().machines.iter().map(|m| m.id.clone()).collect();
    assert_eq!(all, expected, "every machine once, in seed order");
    assert_eq!(sim.count(RouteKind::ListMachines), 3, "one call per page");

    // The filter and the versioned prefix carry over to the next page.
    let workstations = pages(&sim, "/api/v1.0/machines?$filter=rbacGroupId eq 140&$top=4").await;
    let link = workstations[0]["@odata.nextLink"].as_str().unwrap();
    assert!(
        link.starts_with(&format!("{}/api/v1.0/machines?$filter=rbacGroupId%20eq%20140&", sim.base_url())),
        "{link}"
    );
    let names: Vec<String> = workstations.iter().flat_map(dns_names).collect();
    let expected: Vec<String> =
        sim.config().machines.iter().filter(|m| m.rbac_group_id == 140).map(|m| m.computer_dns_name.clone()).collect();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn the_actions_list_pages_newest_first_with_next_links() {
    let sim = with_fleet(20).await;
    let got = pages(&sim, "/api/machineactions?$filter=type eq 'Isolate'&$top=10").await;
    assert_eq!(got.iter().map(|p| ids(p).len()).collect::<Vec<_>>(), [10, 10, 5]);
    let machines: Vec<String> = got
        .iter()
        .flat_map(|p| p["value"].as_array().unwrap().clone())
        .map(|a| a["machineId"].as_str().unwrap().to_owned())
        .collect();
    let mut expected: Vec<String> = sim.config().machines.iter().map(|m| m.id.clone()).collect();
    expected.reverse();
    assert_eq!(machines, expected, "the seeded isolations, newest (last seeded) first");
}

#[tokio::test]
async fn the_actions_list_compares_creation_and_update_times_as_instants() {
    let clock = dualkey::clock::ManualClock::new();
    let sim = start_on(fast_config(), &clock).await;
    let client = client_on(&sim, &clock);
    let first = client.unisolate(MACHINE, "first").await.unwrap();
    poll_until_final(&client, &clock, &first.id).await;
    clock.advance(Duration::from_secs(10));
    let second = client.unisolate(OTHER_MACHINE, "second").await.unwrap();
    let created = second.creation_date_time_utc.clone().unwrap();
    assert!(is_seven_digit_utc(&created));

    let comments = async |filter: String| {
        let (status, body) = get(&sim, &format!("/api/machineactions?$filter={filter}")).await;
        assert_eq!(status, 200, "{filter}: {body}");
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["requestorComment"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(comments(format!("type eq 'Unisolate' and creationDateTimeUtc ge {created}")).await, ["second"]);
    assert_eq!(comments(format!("type eq 'Unisolate' and creationDateTimeUtc lt {created}")).await, ["first"]);
    assert!(comments(format!("creationDateTimeUtc gt {created}")).await.is_empty());
    // Three fraction digits name the same instant as MDE's seven.
    let short = format!("{}Z", &created[..created.len() - 5]);
    assert_eq!(comments(format!("creationDateTimeUtc eq {short}")).await, ["second"]);
    let updated = poll_until_final(&client, &clock, &second.id).await.last_update_date_time_utc.unwrap();
    assert_eq!(comments(format!("lastUpdateDateTimeUtc ge {updated} and status eq 'Succeeded'")).await, ["second"]);
    let (status, body) = get(&sim, &format!("/api/machineactions?$filter=creationDateTimeUtc gt '{created}'")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("ODataError")),
        "a quoted date-time is no date-time"
    );
}

#[tokio::test]
async fn a_machine_can_take_longer_than_the_simulators_default_to_finish_its_actions() {
    let mut slow = SeedMachine::isolated(&"ef".repeat(20), "offline.contoso.com");
    slow.completes_after = Some((Duration::from_secs(3600), Duration::from_secs(60)));
    let mut config = fast_config();
    config.machines.push(slow);
    let clock = dualkey::clock::ManualClock::new();
    let sim = start_on(config, &clock).await;
    let client = client_on(&sim, &clock);
    let quick = client.unisolate(MACHINE, "release").await.unwrap();
    let late = client.unisolate(&"ef".repeat(20), "release").await.unwrap();
    poll_until_final(&client, &clock, &quick.id).await;
    assert_eq!(client.get_action(&late.id).await.unwrap().status, Some(ActionStatus::Pending));
    clock.advance(Duration::from_secs(3600));
    assert_eq!(client.get_action(&late.id).await.unwrap().status, Some(ActionStatus::InProgress));
    clock.advance(Duration::from_secs(60));
    assert_eq!(client.get_action(&late.id).await.unwrap().status, Some(ActionStatus::Succeeded));
}

async fn portal(sim: &SimulatorHandle, machine: &str, verb: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}/_simulator/machines/{machine}/{verb}", sim.base_url());
    let mut request = reqwest::Client::new().post(url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

#[tokio::test]
async fn the_portal_route_creates_an_action_by_another_requestor_without_a_token_or_budget() {
    let sim = start(SimulatorConfig { rate_per_minute: 1, ..fast_config() }).await;
    let (status, body) = portal(&sim, MACHINE, "unisolate", None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["type"], "Unisolate");
    assert_eq!(body["requestor"], "portal-user@contoso.com");
    assert_eq!(body["requestorComment"], "Released from the portal");
    assert_eq!(body["machineId"], MACHINE);
    assert_eq!(body["status"], "Pending");

    let named = json!({"requestor": "eve@contoso.com", "comment": "undo"});
    let (status, body) = portal(&sim, OTHER_MACHINE, "isolate", Some(named)).await;
    assert_eq!(status, 201);
    assert_eq!((body["type"].as_str(), body["requestor"].as_str()), (Some("Isolate"), Some("eve@contoso.com")));
    assert_eq!(body["scope"], "Full");
    let (status, body) = portal(&sim, UNKNOWN_MACHINE, "unisolate", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("ResourceNotFound")));

    assert_eq!(sim.count(RouteKind::Portal), 3);
    assert_eq!(sim.count(RouteKind::Unisolate) + sim.count(RouteKind::Isolate), 0, "no API call");
    // The API's budget of one unisolate a minute is still there.
    let third = sim.config().machines[2].id.clone();
    let (status, _) = post(&sim, &format!("/api/machines/{third}/unisolate"), json!({"Comment": "release"})).await;
    assert_eq!(status, 201);
    let filter = format!("requestor eq 'portal-user@contoso.com' and machineId eq '{MACHINE}'");
    let (status, body) = get(&sim, &format!("/api/machineactions?$filter={filter}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["value"][0]["requestSource"], "Portal");
}

#[tokio::test]
async fn the_simulator_counts_calls_by_kind_and_those_it_throttled() {
    let sim = start(SimulatorConfig { rate_per_minute: 1, ..fast_config() }).await;
    for _ in 0..3 {
        get(&sim, "/api/machines").await;
    }
    get(&sim, &format!("/api/machines/{MACHINE}")).await;
    let calls = sim.calls_by_kind();
    assert_eq!(calls.get(&RouteKind::ListMachines), Some(&3));
    assert_eq!(calls.get(&RouteKind::GetMachine), Some(&1), "listing machines has its own budget");
    assert_eq!(calls.get(&RouteKind::Token), Some(&4));
    assert_eq!(calls.get(&RouteKind::Unisolate), None);
    assert_eq!(sim.throttled(), 2);
}
