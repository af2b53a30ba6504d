use crate::helpers::*;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Serves the test JWKS on loopback and counts fetches.
async fn jwks_server() -> (String, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let app = axum::Router::new().route(
        "/keys",
        axum::routing::get(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                ([("content-type", "application/json")], RS256_JWKS)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/keys", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, fetches)
}

/// Serves the test JWKS for the first `answered` fetches; later fetches never get an answer.
/// Counts every fetch.
async fn jwks_server_that_hangs_after(answered: usize) -> (String, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let app = axum::Router::new().route(
        "/keys",
        axum::routing::get(move || {
            let counter = counter.clone();
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) >= answered {
                    std::future::pending::<()>().await;
                }
                ([("content-type", "application/json")], RS256_JWKS)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/keys", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, fetches)
}

/// `n` concurrent reads with `token`; panics if they do not all answer within a bound far
/// beyond their normal time (they would only take longer by waiting on a hanging fetch).
async fn concurrent_statuses(app: &TestApp, token: &str, n: usize) -> Vec<StatusCode> {
    let reads = (0..n).map(|_| status_of(app, token));
    tokio::time::timeout(std::time::Duration::from_secs(10), futures::future::join_all(reads))
        .await
        .expect("the requests waited on the hanging key fetch")
}

async fn status_of(app: &TestApp, token: &str) -> StatusCode {
    app.get("/api/v1/releases", token).await.status()
}

#[tokio::test]
async fn a_missing_token_is_401_with_a_bearer_challenge() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/api/v1/releases")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    assert_eq!(error_code(r).await.1, "missing_token");
    let r =
        app.http.get(app.url("/api/v1/releases")).header("authorization", "Basic YWxpY2U6eA==").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_bad_token_is_401_with_an_invalid_token_challenge() {
    let app = spawn_app().await;
    let r = app.get("/api/v1/releases", "not.a.jwt").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    assert_eq!(error_code(r).await.1, "invalid_token");
}

#[tokio::test]
async fn expiry_not_before_issuer_and_audience_are_enforced_with_a_small_skew() {
    let app = spawn_app().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let roles = json!([AUDITOR]);
    let ok = app.token_with(json!({"sub": "audrey", "roles": roles}));
    assert_eq!(status_of(&app, &ok).await, StatusCode::OK);
    let cases = [
        ("expired", json!({"sub": "audrey", "roles": roles, "exp": now - 120})),
        ("not yet valid", json!({"sub": "audrey", "roles": roles, "nbf": now + 120})),
        ("wrong issuer", json!({"sub": "audrey", "roles": roles, "iss": "https://evil.test"})),
        ("wrong audience", json!({"sub": "audrey", "roles": roles, "aud": "someone-else"})),
        ("no exp", json!({"sub": "audrey", "roles": roles, "exp": null})),
        ("no subject", json!({"roles": roles})),
        ("roles not a list", json!({"sub": "audrey", "roles": "Audit.Read"})),
    ];
    for (name, claims) in cases {
        assert_eq!(status_of(&app, &app.token_with(claims)).await, StatusCode::UNAUTHORIZED, "{name}");
    }
    let within_skew = app.token_with(json!({"sub": "audrey", "roles": roles, "exp": now - 20, "nbf": now + 20}));
    assert_eq!(status_of(&app, &within_skew).await, StatusCode::OK, "20 s of skew is tolerated");
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_refused() {
    let app = spawn_app().await;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = b64.encode(full_claims(json!({"sub": "audrey", "roles": [AUDITOR]})).to_string());
    for token in [format!("{header}.{claims}."), format!("{header}.{claims}")] {
        assert_eq!(status_of(&app, &token).await, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn a_token_signed_with_another_secret_is_refused() {
    let app = spawn_app().await;
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &full_claims(json!({"sub": "audrey", "roles": [AUDITOR]})),
        &jsonwebtoken::EncodingKey::from_secret(b"a-different-secret-of-enough-length!!").unwrap(),
    )
    .unwrap();
    assert_eq!(status_of(&app, &forged).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn rs256_tokens_verify_against_the_jwks_and_forgeries_do_not() {
    let (url, fetches) = jwks_server().await;
    let app = spawn_app_with(|s| {
        s.auth.hs256_secret = None;
        s.auth.jwks_url = Some(url);
    })
    .await;
    let good = rs256_token(RS256_KEY, "test-key-1", json!({"sub": "audrey", "roles": [AUDITOR]}));
    assert_eq!(status_of(&app, &good).await, StatusCode::OK);
    assert_eq!(status_of(&app, &good).await, StatusCode::OK);
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "the key set is cached");

    let wrong_key = rs256_token(RS256_OTHER_KEY, "test-key-1", json!({"sub": "audrey", "roles": [AUDITOR]}));
    assert_eq!(status_of(&app, &wrong_key).await, StatusCode::UNAUTHORIZED);

    // An HS256 token whose "secret" is the RSA public key: the classic algorithm confusion.
    let confused = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &full_claims(json!({"sub": "audrey", "roles": [AUDITOR]})),
        &jsonwebtoken::EncodingKey::from_secret(RS256_PUBLIC_KEY).unwrap(),
    )
    .unwrap();
    assert_eq!(status_of(&app, &confused).await, StatusCode::UNAUTHORIZED);

    // Unknown kids trigger at most one refetch within the minimum refresh interval.
    for i in 0..10 {
        let t = rs256_token(RS256_KEY, &format!("rotated-{i}"), json!({"sub": "audrey", "roles": [AUDITOR]}));
        assert_eq!(status_of(&app, &t).await, StatusCode::UNAUTHORIZED);
    }
    assert!(fetches.load(Ordering::SeqCst) <= 2, "fetched {} times", fetches.load(Ordering::SeqCst));
}

#[tokio::test]
async fn an_unknown_kid_is_refetched_once_the_minimum_interval_has_passed() {
    let (url, fetches) = jwks_server().await;
    let app = spawn_app_with(|s| {
        s.auth.hs256_secret = None;
        s.auth.jwks_url = Some(url);
        s.auth.jwks_min_refresh = "1m".parse().unwrap();
    })
    .await;
    let unknown = rs256_token(RS256_KEY, "not-yet-published", json!({"sub": "audrey", "roles": [AUDITOR]}));
    assert_eq!(status_of(&app, &unknown).await, StatusCode::UNAUTHORIZED);
    app.clock.advance(std::time::Duration::from_secs(59));
    assert_eq!(status_of(&app, &unknown).await, StatusCode::UNAUTHORIZED);
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "not refetched within jwks_min_refresh");
    app.clock.advance(std::time::Duration::from_secs(1));
    assert_eq!(status_of(&app, &unknown).await, StatusCode::UNAUTHORIZED);
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_algorithm_the_configuration_does_not_enable_is_refused() {
    let app = spawn_app().await; // HS256 only
    let rs = rs256_token(RS256_KEY, "test-key-1", json!({"sub": "audrey", "roles": [AUDITOR]}));
    assert_eq!(status_of(&app, &rs).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_unreachable_key_set_is_503_not_401() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/keys", listener.local_addr().unwrap());
    drop(listener);
    let app = spawn_app_with(|s| {
        s.auth.hs256_secret = None;
        s.auth.jwks_url = Some(url);
    })
    .await;
    let t = rs256_token(RS256_KEY, "test-key-1", json!({"sub": "audrey", "roles": [AUDITOR]}));
    let r = app.get("/api/v1/releases", &t).await;
    assert_eq!(error_code(r).await, (StatusCode::SERVICE_UNAVAILABLE, "identity_provider_unavailable".into()));
}

#[tokio::test]
async fn the_principal_and_roles_come_from_the_configured_claims() {
    let app = spawn_app_with(|s| {
        s.auth.principal_claim = "oid".into();
        s.auth.roles_claim = "app_roles".into();
    })
    .await;
    let t = app.token_with(
        json!({"sub": "pairwise-sub", "oid": "00000000-0000-0000-0000-0000000000aa", "app_roles": [REQUESTER]}),
    );
    let r = app
        .post("/api/v1/releases", &t, json!({"machine_id": machine(1), "comment": "reimaged and scanned clean"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.json::<Value>().await.unwrap()["requested_by"], "00000000-0000-0000-0000-0000000000aa");
    let roles_in_wrong_claim = app.token_with(json!({"oid": "x", "roles": [REQUESTER]}));
    let r = app
        .post(
            "/api/v1/releases",
            &roles_in_wrong_claim,
            json!({"machine_id": machine(2), "comment": "reimaged and scanned clean"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn tokens_with_a_cached_key_are_verified_at_once_while_a_refresh_hangs() {
    let (url, fetches) = jwks_server_that_hangs_after(1).await;
    let app = spawn_app_with(|s| {
        s.auth.hs256_secret = None;
        s.auth.jwks_url = Some(url);
        // Once the clock passes max_age the set is stale, and the refresh would hang for an hour.
        s.auth.jwks_max_age = "10m".parse().unwrap();
        s.auth.jwks_min_refresh = "1s".parse().unwrap();
        s.auth.jwks_timeout = "1h".parse().unwrap();
    })
    .await;
    let good = rs256_token(RS256_KEY, "test-key-1", json!({"sub": "audrey", "roles": [AUDITOR]}));
    assert_eq!(status_of(&app, &good).await, StatusCode::OK);
    app.clock.advance(std::time::Duration::from_secs(600));

    assert_eq!(concurrent_statuses(&app, &good, 3).await, vec![StatusCode::OK; 3]);
    for _ in 0..500 {
        if fetches.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 2, "the stale set started one refresh");
    assert_eq!(concurrent_statuses(&app, &good, 5).await, vec![StatusCode::OK; 5]);
    assert_eq!(fetches.load(Ordering::SeqCst), 2, "one refresh at a time");
}

#[tokio::test]
async fn a_failed_key_fetch_is_attempted_once_and_remembered_not_retried_per_request() {
    let (url, fetches) = jwks_server_that_hangs_after(0).await;
    let app = spawn_app_with(|s| {
        s.auth.hs256_secret = None;
        s.auth.jwks_url = Some(url);
        s.auth.jwks_timeout = "50ms".parse().unwrap();
        s.auth.jwks_min_refresh = "1h".parse().unwrap();
    })
    .await;
    let good = rs256_token(RS256_KEY, "test-key-1", json!({"sub": "audrey", "roles": [AUDITOR]}));
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    assert_eq!(concurrent_statuses(&app, &good, 4).await, vec![unavailable; 4], "all wait for the one fetch");
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    for _ in 0..3 {
        let r = app.get("/api/v1/releases", &good).await;
        assert_eq!(error_code(r).await, (unavailable, "identity_provider_unavailable".into()));
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "the failure is remembered for jwks_min_refresh");
}
