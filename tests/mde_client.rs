//! The MDE client against the simulator over real HTTP on loopback: calls, answers and the
//! classification of every failure the worker must handle.

mod mde_support;

use std::time::Duration;

use dualkey::mde::simulator::{FaultAction, RouteKind, SimulatorConfig};
use dualkey::mde::{ActionStatus, ActionType, IsolationType, MdeError, TransportKind};
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
