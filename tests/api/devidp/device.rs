//! The device authorization grant (RFC 8628) as the terminal client uses it, on the test clock.

use super::*;

#[tokio::test]
async fn a_device_code_is_pending_until_approved_and_then_redeems_once() {
    let idp = Idp::start().await;
    let device = idp.device_code(&format!("{DEV_API_SCOPE} offline_access")).await;
    let user_code = device["user_code"].as_str().unwrap();
    assert!(user_code.len() == 9 && user_code.as_bytes()[4] == b'-', "{user_code}");
    assert_eq!(device["verification_uri"], idp.sim.devicelogin_url());
    assert_eq!(device["verification_uri_complete"], format!("{}?user_code={user_code}", idp.sim.devicelogin_url()));
    assert_eq!((device["expires_in"].as_u64(), device["interval"].as_u64()), (Some(900), Some(0)));
    assert!(device["message"].as_str().unwrap().contains(user_code));

    let (status, body) = idp.poll(&device).await;
    assert_eq!((status, oauth_error(&body)), (StatusCode::BAD_REQUEST, "authorization_pending"));
    let page = idp.http.get(device["verification_uri_complete"].as_str().unwrap()).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains(&format!("value=\"{user_code}\"")) && page.contains("value=\"audrey\""));
    let (status, page) = idp.answer(&device, &[("user", "audrey")]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Audrey"));

    let (status, answer) = idp.poll(&device).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer.get("id_token").is_none() && answer["refresh_token"].is_string());
    let access = idp.verify(answer["access_token"].as_str().unwrap(), DEV_API_AUDIENCE).await.unwrap();
    assert_eq!((access["oid"].as_str(), access["roles"][0].as_str()), (Some("audrey"), Some("Audit.Read")));
    let (status, body) = idp.poll(&device).await;
    assert_eq!((status, oauth_error(&body)), (StatusCode::BAD_REQUEST, "invalid_grant"));
    let (status, _) = idp.answer(&device, &[("user", "bob")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an answered code cannot be answered again");
    assert_eq!(idp.sim.idp_grants(DEVICE_GRANT), 1);
}

#[tokio::test]
async fn polling_a_device_code_too_early_slows_down_until_the_longer_interval_has_passed() {
    let idp = Idp::start_with(|c| c.device_interval = Duration::from_secs(5)).await;
    let device = idp.device_code("openid offline_access").await;
    assert_eq!(device["interval"], 5);
    let (_, body) = idp.poll(&device).await;
    assert_eq!(oauth_error(&body), "authorization_pending");
    let (status, body) = idp.poll(&device).await;
    assert_eq!((status, oauth_error(&body)), (StatusCode::BAD_REQUEST, "slow_down"));
    // The interval is now 10 s: 6 s later is still too early, and restarts the wait.
    idp.clock.advance(Duration::from_secs(6));
    assert_eq!(oauth_error(&idp.poll(&device).await.1), "slow_down");
    idp.clock.advance(Duration::from_secs(16));
    assert_eq!(oauth_error(&idp.poll(&device).await.1), "authorization_pending");
    idp.answer(&device, &[("user", "bob")]).await;
    idp.clock.advance(Duration::from_secs(16));
    let (status, answer) = idp.poll(&device).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["id_token"].is_string());
}

#[tokio::test]
async fn a_denied_device_code_answers_access_denied() {
    let idp = Idp::start().await;
    let device = idp.device_code(DEV_API_SCOPE).await;
    let (status, page) = idp.answer(&device, &[("deny", "1")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("not signed in"));
    let (status, body) = idp.poll(&device).await;
    assert_eq!((status, oauth_error(&body)), (StatusCode::BAD_REQUEST, "access_denied"));
}

#[tokio::test]
async fn a_device_code_expires_after_its_lifetime_on_the_clock() {
    let idp = Idp::start().await;
    let device = idp.device_code(DEV_API_SCOPE).await;
    idp.clock.advance(Duration::from_secs(15 * 60));
    let (status, body) = idp.poll(&device).await;
    assert_eq!((status, oauth_error(&body)), (StatusCode::BAD_REQUEST, "expired_token"));
    let (status, page) = idp.answer(&device, &[("user", "bob")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("unknown or has expired"));
}

#[tokio::test]
async fn the_device_page_refuses_a_code_it_never_issued() {
    let idp = Idp::start().await;
    let fake = serde_json::json!({"user_code": "BCDF-GHJK"});
    let (status, page) = idp.answer(&fake, &[("user", "bob")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("unknown or has expired"));
}

#[tokio::test]
async fn a_daemon_that_trusts_the_provider_accepts_the_api_token_of_a_device_sign_in() {
    let clock = ManualClock::new();
    let mut config = crate::helpers::test_simulator();
    config.idp.device_interval = Duration::ZERO;
    let idp = Idp::over(crate::helpers::start_simulator(config, &clock).await, clock.clone());
    let (jwks_url, issuer) = (idp.sim.idp_jwks_url(), idp.sim.idp_issuer());
    let app = crate::helpers::spawn_on(idp.sim.clone(), &clock, |s| {
        s.auth.hs256_secret = None;
        s.auth.jwks_url = Some(jwks_url);
        s.auth.issuer = issuer;
        s.auth.audience = DEV_API_AUDIENCE.into();
        s.auth.principal_claim = "oid".into();
    })
    .await;
    let device = idp.device_code(&format!("{DEV_API_SCOPE} offline_access")).await;
    idp.answer(&device, &[("user", "alice")]).await;
    let (status, answer) = idp.poll(&device).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let body = serde_json::json!({"machine_id": crate::helpers::machine(1), "comment": "reimaged and scanned clean"});
    let created = app.post("/api/v1/releases", answer["access_token"].as_str().unwrap(), body).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.json::<Value>().await.unwrap()["requested_by"], "alice");
}
