//! The MDE client against the simulator over real HTTP on loopback: calls, answers and the
//! classification of every failure the worker must handle.

mod mde_support;

use std::time::Duration;

use dualkey::mde::simulator::{FaultAction, RouteKind, SimulatorConfig, fleet};
use dualkey::mde::{
    ActionQuery, ActionStatus, ActionType, Cmp, IsolationType, MachineQuery, MdeError, TransportKind, Wait,
};
use mde_support::*;

#[tokio::test]
async fn an_unisolate_is_created_pending_and_polled_to_succeeded() {
    let clock = dualkey::clock::ManualClock::new();
    let sim = start_on(fast_config(), &clock).await;
    // The configuration `serve --dev` uses.
    let client =
        dualkey::mde::MdeClient::new(sim.client_config().unwrap(), std::sync::Arc::new(clock.clone())).unwrap();

    let action = client.unisolate(MACHINE, "release r-1").await.unwrap();
    assert_eq!(action.action_type, Some(ActionType::Unisolate));
    assert_eq!(action.status, Some(ActionStatus::Pending));
    assert_eq!(action.requestor_comment.as_deref(), Some("release r-1"));
    assert_eq!(action.requestor.as_deref(), Some("dualkey release worker"));
    assert_eq!(action.machine_id.as_deref(), Some(MACHINE));

    let done = poll_until_final(&client, &clock, &action.id).await;
    assert_eq!(done.status, Some(ActionStatus::Succeeded));
    assert!(done.last_updated_at().unwrap() > done.created_at().unwrap());
    assert_eq!(sim.count(RouteKind::Token), 1, "the token is cached");
    assert_eq!(sim.unisolate_count(MACHINE), 1);
}

#[tokio::test]
async fn list_actions_returns_only_the_machines_actions_of_that_type() {
    let sim = start(fast_config()).await;
    let client = client_for(&sim);
    client.unisolate(MACHINE, "release r-2").await.unwrap();

    let unisolates = client.list_actions(MACHINE, &ActionType::Unisolate).await.unwrap();
    assert_eq!(unisolates.len(), 1);
    assert_eq!(unisolates[0].requestor_comment.as_deref(), Some("release r-2"));
    let isolates = client.list_actions(MACHINE, &ActionType::Isolate).await.unwrap();
    assert_eq!(isolates.len(), 1, "the seeded isolation");
    assert_eq!(isolates[0].status, Some(ActionStatus::Succeeded));
    let others = client.list_actions(OTHER_MACHINE, &ActionType::Unisolate).await.unwrap();
    assert!(others.is_empty());
}

#[tokio::test]
async fn an_isolate_echoes_its_isolation_type_as_scope() {
    let clock = dualkey::clock::ManualClock::new();
    let sim = start_on(fast_config(), &clock).await;
    let client = client_on(&sim, &clock);
    let done = client.unisolate(MACHINE, "release").await.unwrap();
    poll_until_final(&client, &clock, &done.id).await;

    let action = client.isolate(MACHINE, "again", IsolationType::Selective).await.unwrap();
    assert_eq!(action.action_type, Some(ActionType::Isolate));
    assert_eq!(action.scope.as_deref(), Some("Selective"));
}

#[tokio::test]
async fn get_machine_works_and_an_unknown_machine_is_a_permanent_resource_not_found() {
    let sim = start(fast_config()).await;
    let client = client_for(&sim);
    let machine = client.get_machine(MACHINE).await.unwrap();
    assert_eq!(machine.id, MACHINE);
    assert!(machine.computer_dns_name.is_some());

    let err = client.get_machine(UNKNOWN_MACHINE).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.code(), Some("ResourceNotFound"));
    let expected = format!("Machine {UNKNOWN_MACHINE} was not found. OrgId: {}.", sim.config().tenant_id);
    assert_eq!(err.message(), Some(expected.as_str()));
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_403_for_a_missing_role_is_permanent() {
    let config = SimulatorConfig { app_roles: vec!["Machine.Read.All".into()], ..fast_config() };
    let sim = start(config).await;
    let err = client_for(&sim).unisolate(MACHINE, "release").await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert_eq!(err.code(), Some("Forbidden"));
    assert!(err.message().unwrap().contains("Machine.Isolate"));
    assert!(!err.is_retryable());
    assert_eq!(sim.unisolate_count(MACHINE), 0);
}

#[tokio::test]
async fn a_429_carries_retry_after_and_is_retryable() {
    let sim = start(fast_config()).await;
    sim.inject(RouteKind::Unisolate, FaultAction::too_many_requests(7), 1);
    let err = client_for(&sim).unisolate(MACHINE, "release").await.unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert_eq!(err.code(), Some("TooManyRequests"));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert!(err.is_retryable());
    assert_eq!(sim.unisolate_count(MACHINE), 0);
}

#[tokio::test]
async fn the_simulators_own_limit_answers_429_with_retry_after() {
    let config = SimulatorConfig { rate_per_minute: 2, ..fast_config() };
    let sim = start(config).await;
    let client = client_for(&sim);
    client.get_machine(MACHINE).await.unwrap();
    client.get_machine(MACHINE).await.unwrap();
    let err = client.get_machine(MACHINE).await.unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert!(err.retry_after().unwrap() >= Duration::from_secs(1));
    // Other APIs have their own budget.
    client.list_actions(MACHINE, &ActionType::Isolate).await.unwrap();
    assert_eq!(sim.max_calls_in_rolling_minute(RouteKind::GetMachine), 3);
}

#[tokio::test]
async fn a_503_is_retryable() {
    let sim = start(fast_config()).await;
    sim.inject(RouteKind::GetAction, FaultAction::status(503), 1);
    let err = client_for(&sim).get_action("x").await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_dropped_connection_is_a_retryable_transport_error_and_creates_nothing() {
    let sim = start(fast_config()).await;
    sim.inject(RouteKind::Unisolate, FaultAction::Drop, 1);
    let err = client_for(&sim).unisolate(MACHINE, "release").await.unwrap_err();
    assert!(matches!(err, MdeError::Transport { .. }), "expected a transport error, got {err:?}");
    assert!(err.is_retryable());
    assert_eq!(err.status(), None);
    assert_eq!(sim.unisolate_count(MACHINE), 0);
    let seen = sim.requests();
    let dropped = seen.iter().find(|r| r.kind == RouteKind::Unisolate).unwrap();
    assert_eq!(dropped.status, None, "nothing was answered");
}

#[tokio::test]
async fn process_then_drop_leaves_exactly_one_action_visible_through_list_actions() {
    let sim = start(fast_config()).await;
    let client = client_for(&sim);
    sim.inject(RouteKind::Unisolate, FaultAction::ProcessThenDrop, 1);
    let err = client.unisolate(MACHINE, "release r-9").await.unwrap_err();
    assert!(matches!(err, MdeError::Transport { .. }), "got {err:?}");

    let actions = client.list_actions(MACHINE, &ActionType::Unisolate).await.unwrap();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].requestor_comment.as_deref(), Some("release r-9"));
}

#[tokio::test]
async fn a_slow_answer_past_the_request_timeout_is_a_retryable_timeout() {
    let sim = start(fast_config()).await;
    sim.inject(RouteKind::GetMachine, FaultAction::Delay(Duration::from_secs(3)), 1);
    let mut config = config_for(
        &sim,
        dualkey::mde::MdeCredential::ClientSecret(dualkey::secret::Secret::new(
            dualkey::mde::simulator::DEV_CLIENT_SECRET,
        )),
    );
    config.request_timeout = Duration::from_millis(300);
    let client = dualkey::mde::MdeClient::new(config, std::sync::Arc::new(dualkey::clock::SystemClock)).unwrap();
    let err = client.get_machine(MACHINE).await.unwrap_err();
    assert!(matches!(err, MdeError::Transport { kind: TransportKind::Timeout, .. }), "got {err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn an_expired_token_leads_to_one_refresh_and_a_successful_retry() {
    let sim = start(fast_config()).await;
    let client = client_for(&sim);
    client.get_machine(MACHINE).await.unwrap();
    sim.expire_all_tokens();
    client.get_machine(MACHINE).await.unwrap();

    assert_eq!(sim.count(RouteKind::Token), 2);
    let statuses: Vec<_> =
        sim.requests().iter().filter(|r| r.kind == RouteKind::GetMachine).map(|r| r.status).collect();
    assert_eq!(statuses, [Some(200), Some(401), Some(200)]);
}

#[tokio::test]
async fn a_401_after_the_refresh_is_returned_not_retried_again() {
    let sim = start(fast_config()).await;
    sim.inject(RouteKind::GetMachine, FaultAction::status(401), 2);
    let err = client_for(&sim).get_machine(MACHINE).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(!err.is_retryable());
    assert_eq!(sim.count(RouteKind::GetMachine), 2);
    assert_eq!(sim.count(RouteKind::Token), 2);
}

#[tokio::test]
async fn a_second_unisolate_while_the_first_is_pending_is_active_request_already_exists() {
    let config = SimulatorConfig { pending_for: Duration::from_secs(600), ..fast_config() };
    let sim = start(config).await;
    let client = client_for(&sim);
    client.unisolate(MACHINE, "release r-3").await.unwrap();
    let err = client.unisolate(MACHINE, "release r-3").await.unwrap_err();
    assert!(matches!(err, MdeError::ActiveRequestAlreadyExists { .. }), "got {err:?}");
    assert_eq!(err.message(), Some("Action is already in progress"));
    assert!(!err.is_retryable());
    assert_eq!(sim.unisolate_count(MACHINE), 1);
}

fn names(machines: &[dualkey::mde::Machine]) -> Vec<String> {
    machines.iter().map(|m| m.computer_dns_name.clone().unwrap()).collect()
}

#[tokio::test]
async fn list_machines_sends_each_query_field_as_a_filter_mde_understands() {
    let mut config = fast_config();
    config.machines.extend(fleet(30));
    let sim = start(config).await;
    let client = client_for(&sim);
    let list = async |q: MachineQuery| names(&client.list_machines(&q, Wait::Queue).await.unwrap());

    let tier0 = ["ws-0010.contoso.com", "ws-0020.contoso.com", "ws-0030.contoso.com"];
    assert_eq!(list(MachineQuery { rbac_group_id: Some(10), ..Default::default() }).await, tier0);
    assert_eq!(list(MachineQuery { tag: Some("tier0".into()), ..Default::default() }).await, tier0);
    let inactive = MachineQuery { health_status: Some("Inactive".into()), ..Default::default() };
    assert_eq!(list(inactive).await, ["ws-0007.contoso.com", "ws-0027.contoso.com"]);
    let risky_workstations =
        MachineQuery { rbac_group_id: Some(140), risk_score: Some("High".into()), ..Default::default() };
    assert_eq!(
        list(risky_workstations).await,
        ["ws-0004.contoso.com", "ws-0008.contoso.com", "ws-0016.contoso.com", "ws-0028.contoso.com"]
    );
    assert_eq!(
        list(MachineQuery { tag: Some("no-such-tag".into()), ..Default::default() }).await,
        Vec::<String>::new()
    );
    let everything = client.list_machines(&MachineQuery::default(), Wait::Queue).await.unwrap();
    assert_eq!(everything.len(), 35);
    assert_eq!(everything[0].id, MACHINE, "in seed order");
    assert_eq!(sim.count(RouteKind::ListMachines), 6, "one call per list: each fits a page");
}

#[tokio::test]
async fn query_actions_filters_on_creation_time_as_gt_ge_and_lt() {
    let clock = dualkey::clock::ManualClock::new();
    let sim = start_on(fast_config(), &clock).await;
    let client = client_on(&sim, &clock);
    let first = client.unisolate(MACHINE, "first").await.unwrap();
    poll_until_final(&client, &clock, &first.id).await;
    clock.advance(Duration::from_secs(5));
    let second = client.unisolate(OTHER_MACHINE, "second").await.unwrap();
    let (t1, t2) = (first.created_at().unwrap(), second.created_at().unwrap());
    assert!(t1 < t2);

    let comments = async |created: (Cmp, time::OffsetDateTime)| {
        let q = ActionQuery { action_type: Some(ActionType::Unisolate), created: Some(created), ..Default::default() };
        let actions = client.query_actions(&q, Wait::Queue).await.unwrap();
        actions.into_iter().map(|a| a.requestor_comment.unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(comments((Cmp::Gt, t1)).await, ["second"]);
    assert_eq!(comments((Cmp::Ge, t1)).await, ["second", "first"], "newest first");
    assert_eq!(comments((Cmp::Lt, t2)).await, ["first"]);
    assert!(comments((Cmp::Gt, t2)).await.is_empty());

    let mine = ActionQuery {
        machine_id: Some(MACHINE.into()),
        status: Some(ActionStatus::Succeeded),
        requestor: Some("dualkey release worker".into()),
        ..Default::default()
    };
    let found = client.query_actions(&mine, Wait::Queue).await.unwrap();
    assert_eq!(found.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), [first.id.as_str()]);
    assert_eq!(sim.count(RouteKind::ListActions), 5);
}

#[tokio::test]
async fn a_portal_action_shows_its_requestor_and_is_no_api_call() {
    let sim = start(fast_config()).await;
    let client = client_for(&sim);
    let action = sim.portal_action(MACHINE, ActionType::Unisolate, "o'neil@contoso.com", "undo isolation").unwrap();
    assert_eq!(action.requestor.as_deref(), Some("o'neil@contoso.com"));
    assert_eq!(action.request_source.as_deref(), Some("Portal"));
    assert!(sim.requests().is_empty(), "not in the request log");
    assert!(sim.portal_action(UNKNOWN_MACHINE, ActionType::Unisolate, "x", "y").is_none());

    let q = ActionQuery { requestor: Some("o'neil@contoso.com".into()), ..Default::default() };
    let found = client.query_actions(&q, Wait::Queue).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, action.id);
    assert_eq!(found[0].action_type, Some(ActionType::Unisolate));
    let actions = client.list_machine_actions_waiting(MACHINE, Wait::AtMost(Duration::ZERO)).await.unwrap();
    assert_eq!(dualkey::mde::latest(&actions).map(|a| a.id.as_str()), Some(action.id.as_str()));
    assert_eq!(sim.count(RouteKind::Unisolate), 0);
    assert_eq!(sim.count(RouteKind::ListActions), 2);
}

#[tokio::test]
async fn machines_added_while_running_are_listed_and_readable() {
    let sim = start(fast_config()).await;
    let client = client_for(&sim);
    sim.add_machines(fleet(3));
    let all = client.list_machines(&MachineQuery::default(), Wait::Queue).await.unwrap();
    assert_eq!(all.len(), 8);
    let added = &fleet(3)[2];
    let machine = client.get_machine_waiting(&added.id, Wait::AtMost(Duration::from_secs(1))).await.unwrap();
    assert_eq!(machine.computer_dns_name.as_deref(), Some("ws-0003.contoso.com"));
    let isolations = client.list_actions(&added.id, &ActionType::Isolate).await.unwrap();
    assert_eq!(isolations.len(), 1, "an added isolated machine has its isolation to show");
}

#[tokio::test]
async fn a_list_bigger_than_a_page_is_read_by_following_next_link() {
    let mut config = fast_config();
    config.machines.extend(fleet(10_001));
    let sim = start(config).await;
    let client = client_for(&sim);
    let all = client.list_machines(&MachineQuery::default(), Wait::Queue).await.unwrap();
    assert_eq!(all.len(), 10_006);
    assert_eq!(all.last().unwrap().computer_dns_name.as_deref(), Some("ws-10001.contoso.com"));
    assert_eq!(sim.count(RouteKind::ListMachines), 2, "10,000 a page");
    let tier0 = MachineQuery { tag: Some("tier0".into()), ..Default::default() };
    assert_eq!(client.list_machines(&tier0, Wait::Queue).await.unwrap().len(), 1_000);
}

/// A stand-in MDE on loopback whose `GET /api/machines` answers `page(n, host)` for the n-th
/// call (from 0), and a client whose tokens come from `sim` and whose API calls go to it.
async fn paging_stub(
    sim: &dualkey::mde::simulator::SimulatorHandle,
    page: fn(usize, &str) -> serde_json::Value,
) -> (dualkey::mde::MdeClient, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().route(
        "/api/machines",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let host = headers["host"].to_str().unwrap().to_owned();
            async move { axum::Json(page(n, &host)) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut config = config_for(
        sim,
        dualkey::mde::MdeCredential::ClientSecret(dualkey::secret::Secret::new(
            dualkey::mde::simulator::DEV_CLIENT_SECRET,
        )),
    );
    (config.api_base, config.rate_per_minute, config.rate_per_hour) = (base, 1_000_000, 1_000_000);
    let client = dualkey::mde::MdeClient::new(config, std::sync::Arc::new(dualkey::clock::SystemClock)).unwrap();
    (client, calls)
}

fn machine_json(n: u32) -> serde_json::Value {
    serde_json::json!({ "id": format!("{n:040x}"), "computerDnsName": format!("m{n}.contoso.com") })
}

#[tokio::test]
async fn next_links_are_followed_on_the_same_origin_and_an_entity_seen_twice_is_kept_once() {
    let sim = start(fast_config()).await;
    let (client, calls) = paging_stub(&sim, |n, host| match n {
        0 => serde_json::json!({ "value": [machine_json(1), machine_json(2)],
            "@odata.nextLink": format!("http://{host}/api/machines?$top=2&$skip=2") }),
        // An entity created meanwhile shifted machine 2 onto this page too.
        1 => serde_json::json!({ "value": [machine_json(2), machine_json(3)],
            "@odata.nextLink": "/api/machines?$top=2&$skip=4" }),
        _ => serde_json::json!({ "value": [machine_json(4)] }),
    })
    .await;
    let all = client.list_machines(&MachineQuery::default(), Wait::Queue).await.unwrap();
    assert_eq!(names(&all), ["m1.contoso.com", "m2.contoso.com", "m3.contoso.com", "m4.contoso.com"]);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_next_link_to_another_origin_is_refused_without_being_called() {
    let sim = start(fast_config()).await;
    let (client, calls) = paging_stub(&sim, |_, _| {
        serde_json::json!({ "value": [machine_json(1)], "@odata.nextLink": "http://127.0.0.1:9/api/machines?$skip=1" })
    })
    .await;
    let err = client.list_machines(&MachineQuery::default(), Wait::Queue).await.unwrap_err();
    assert!(matches!(err, MdeError::InvalidResponse { api: dualkey::mde::Api::ListMachines, .. }), "got {err:?}");
    assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_next_link_that_never_ends_stops_after_a_thousand_pages() {
    let sim = start(fast_config()).await;
    let (client, calls) = paging_stub(&sim, |n, host| {
        serde_json::json!({ "value": [], "@odata.nextLink": format!("http://{host}/api/machines?$skip={}", n + 1) })
    })
    .await;
    let err = client.list_machines(&MachineQuery::default(), Wait::Queue).await.unwrap_err();
    assert!(matches!(err, MdeError::InvalidResponse { .. }), "got {err:?}");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1_000);
}
