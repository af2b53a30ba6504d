//! Token acquisition against the simulator's Entra-like endpoint: secrets, certificate
//! assertions checked by signature, and Entra's refusals.

mod mde_support;

use std::sync::Arc;
use std::time::Duration;

use dualkey::mde::simulator::{RouteKind, SimulatorConfig};
use dualkey::mde::{MdeClient, MdeCredential, MdeError};
use dualkey::secret::Secret;
use dualkey::settings::AssertionAlg;
use mde_support::*;

fn certificate_only() -> SimulatorConfig {
    SimulatorConfig { client_secret: None, certificate_pem: Some(CERT.to_owned()), ..fast_config() }
}

fn certificate(key: &str, alg: AssertionAlg) -> MdeCredential {
    MdeCredential::Certificate { certificate_pem: CERT.to_owned(), private_key_pem: Secret::new(key), alg }
}

#[tokio::test]
async fn a_ps256_certificate_assertion_is_accepted_by_the_signature_checking_endpoint() {
    let sim = start(certificate_only()).await;
    let client = client_with(&sim, certificate(KEY, AssertionAlg::PS256));
    client.get_machine(MACHINE).await.unwrap();
    assert_eq!(sim.count(RouteKind::Token), 1);
}

#[tokio::test]
async fn an_rs256_certificate_assertion_is_accepted_too() {
    let sim = start(certificate_only()).await;
    let client = client_with(&sim, certificate(KEY, AssertionAlg::RS256));
    client.get_machine(MACHINE).await.unwrap();
}

#[tokio::test]
async fn an_assertion_signed_with_a_different_key_is_rejected_as_invalid_client() {
    let sim = start(certificate_only()).await;
    let client = client_with(&sim, certificate(OTHER_KEY, AssertionAlg::PS256));
    let err = client.get_machine(MACHINE).await.unwrap_err();
    match &err {
        MdeError::Token { status, error, description, .. } => {
            assert_eq!(*status, 401);
            assert_eq!(error.as_deref(), Some("invalid_client"));
            assert!(description.as_deref().unwrap().starts_with("AADSTS700027:"));
        }
        other => panic!("expected a token refusal, got {other:?}"),
    }
    assert!(!err.is_retryable());
    assert_eq!(sim.count(RouteKind::GetMachine), 0, "no API call without a token");
}

#[tokio::test]
async fn a_wrong_client_secret_is_rejected_as_invalid_client() {
    let sim = start(fast_config()).await;
    let client = client_with(&sim, MdeCredential::ClientSecret(Secret::new("wrong")));
    let err = client.get_machine(MACHINE).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.code(), Some("invalid_client"));
    assert!(err.message().unwrap().starts_with("AADSTS7000215:"));
    assert!(!err.to_string().contains("wrong"));
}

#[tokio::test]
async fn a_secret_is_refused_when_the_app_only_has_a_certificate() {
    let sim = start(certificate_only()).await;
    let err = client_for(&sim).get_machine(MACHINE).await.unwrap_err();
    assert_eq!(err.code(), Some("invalid_client"));
}

#[tokio::test]
async fn a_token_for_an_audience_the_api_does_not_accept_gets_403() {
    let sim = start(fast_config()).await;
    let mut config =
        config_for(&sim, MdeCredential::ClientSecret(Secret::new(dualkey::mde::simulator::DEV_CLIENT_SECRET)));
    config.scope = "https://graph.microsoft.com/.default".into();
    let client = MdeClient::new(config, Arc::new(dualkey::clock::SystemClock)).unwrap();
    let err = client.get_machine(MACHINE).await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert_eq!(err.code(), Some("Forbidden"));
}

#[tokio::test]
async fn a_token_endpoint_failure_is_retryable_when_it_is_a_5xx() {
    let sim = start(fast_config()).await;
    sim.inject(RouteKind::Token, dualkey::mde::simulator::FaultAction::status(503), 1);
    let client = client_for(&sim);
    let err = client.get_machine(MACHINE).await.unwrap_err();
    assert!(matches!(err, MdeError::Token { status: 503, .. }), "got {err:?}");
    assert!(err.is_retryable());
    client.get_machine(MACHINE).await.unwrap();
}

#[tokio::test]
async fn a_cached_token_is_replaced_a_minute_before_it_expires_on_the_clock() {
    let clock = dualkey::clock::ManualClock::new();
    let sim = start_on(fast_config(), &clock).await;
    let lifetime = sim.config().token_lifetime;
    let client = client_on(&sim, &clock);
    client.get_machine(MACHINE).await.unwrap();
    clock.advance(lifetime - Duration::from_secs(65));
    client.get_machine(MACHINE).await.unwrap();
    assert_eq!(sim.count(RouteKind::Token), 1, "still cached more than a minute before it expires");
    clock.advance(Duration::from_secs(10));
    client.get_machine(MACHINE).await.unwrap();
    assert_eq!(sim.count(RouteKind::Token), 2, "replaced within the last minute");
    assert!(sim.requests().iter().all(|r| r.status == Some(200)), "an expired token was never sent");
}

#[tokio::test]
async fn a_certificate_assertion_is_checked_against_the_simulators_clock() {
    let clock = dualkey::clock::ManualClock::new();
    let sim = start_on(certificate_only(), &clock).await;
    let credential = || certificate(KEY, AssertionAlg::PS256);
    let ahead = dualkey::clock::ManualClock::new();
    ahead.advance(Duration::from_secs(2 * 3600));
    let early = MdeClient::new(config_for(&sim, credential()), Arc::new(ahead)).unwrap();
    let err = early.get_machine(MACHINE).await.unwrap_err();
    assert_eq!(err.code(), Some("invalid_client"));
    assert!(err.message().unwrap().starts_with("AADSTS700024:"), "{err}");
    // Two hours later on the simulator's clock, an assertion made on that clock is in range.
    clock.advance(Duration::from_secs(2 * 3600));
    MdeClient::new(config_for(&sim, credential()), Arc::new(clock.clone()))
        .unwrap()
        .get_machine(MACHINE)
        .await
        .unwrap();
}
