//! What the token endpoint issues: rotating refresh tokens, the API's access token, broken ID
//! tokens on request, client authentication, sign-out, and MDE's client credentials beside it.

use super::*;

#[tokio::test]
async fn a_refresh_token_rotates_and_the_old_one_is_refused() {
    let idp = Idp::start().await;
    let first = idp.tokens_for("carol", SCOPE).await;
    let old = first["refresh_token"].as_str().unwrap();
    let (status, second) = idp.refresh(old).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let new = second["refresh_token"].as_str().unwrap();
    assert_ne!(new, old);
    let claims = idp.verify(second["id_token"].as_str().unwrap(), DEV_APP_CLIENT_ID).await.unwrap();
    assert_eq!(claims["oid"], "carol");
    assert!(claims.get("nonce").is_none(), "a refreshed ID token carries no nonce");
    assert_eq!(claims["auth_time"], claims_of(first["id_token"].as_str().unwrap())["auth_time"]);
    let (status, body) = idp.refresh(old).await;
    assert_eq!((status, oauth_error(&body)), (StatusCode::BAD_REQUEST, "invalid_grant"));
    // The replay of the old token ends its successor too: one of the two holders is a thief.
    let (status, body) = idp.refresh(new).await;
    assert_eq!((status, oauth_error(&body)), (StatusCode::BAD_REQUEST, "invalid_grant"));
    assert_eq!(idp.sim.idp_grants("refresh_token"), 1);
}

#[tokio::test]
async fn no_refresh_token_is_issued_without_offline_access() {
    let idp = Idp::start().await;
    let answer = idp.tokens_for("alice", "openid profile").await;
    assert!(answer.get("refresh_token").is_none(), "{answer}");
    assert!(answer["id_token"].is_string());
}

#[tokio::test]
async fn the_api_access_token_has_the_api_audience_and_a_pairwise_sub_with_the_same_oid() {
    let idp = Idp::start().await;
    let answer = idp.tokens_for("olga", &format!("openid {DEV_API_SCOPE}")).await;
    let access = idp.verify(answer["access_token"].as_str().unwrap(), DEV_API_AUDIENCE).await.unwrap();
    let id = idp.verify(answer["id_token"].as_str().unwrap(), DEV_APP_CLIENT_ID).await.unwrap();
    assert_eq!(access["aud"], DEV_API_AUDIENCE);
    assert_eq!(access["oid"], "olga");
    assert_eq!(access["oid"], id["oid"]);
    assert_ne!(access["sub"], id["sub"]);
    assert_eq!(access["roles"], serde_json::json!(["Tier0.Owner"]));
    assert!(access["scp"].is_string() && access.get("nonce").is_none());
    assert_eq!(access["exp"].as_i64().unwrap() - access["iat"].as_i64().unwrap(), 3600);
    // Without the API scope, the access token is for someone else (Graph), as with Entra.
    let other = idp.tokens_for("olga", "openid").await;
    let for_graph = idp.verify(other["access_token"].as_str().unwrap(), DEV_API_AUDIENCE).await;
    assert!(matches!(for_graph, Err(ErrorKind::InvalidAudience)), "{for_graph:?}");
}

#[tokio::test]
async fn each_id_token_fault_breaks_the_next_id_token_the_way_it_names() {
    let idp = Idp::start().await;
    for fault in [
        IdTokenFault::BadSignature,
        IdTokenFault::WrongAudience,
        IdTokenFault::WrongNonce,
        IdTokenFault::Expired,
        IdTokenFault::WrongIssuer,
    ] {
        idp.sim.break_next_id_token(fault);
        let broken = idp.tokens_for("bob", SCOPE).await;
        let token = broken["id_token"].as_str().unwrap();
        let claims = claims_of(token);
        let verified = idp.verify(token, DEV_APP_CLIENT_ID).await;
        match fault {
            IdTokenFault::BadSignature => {
                assert!(matches!(verified, Err(ErrorKind::InvalidSignature)), "{:?}", verified)
            }
            IdTokenFault::WrongAudience => {
                assert!(matches!(verified, Err(ErrorKind::InvalidAudience)), "{:?}", verified);
                assert_ne!(claims["aud"], DEV_APP_CLIENT_ID);
            }
            IdTokenFault::WrongNonce => {
                let claims = verified.unwrap();
                assert!(claims["nonce"].is_string() && claims["nonce"] != "nonce-1", "{claims}");
            }
            IdTokenFault::Expired => {
                assert!(matches!(verified, Err(ErrorKind::ExpiredSignature)), "{:?}", verified);
                assert!(claims["exp"].as_i64().unwrap() < idp.now_secs() - 60);
            }
            IdTokenFault::WrongIssuer => {
                assert!(matches!(verified, Err(ErrorKind::InvalidIssuer)), "{:?}", verified);
                assert_ne!(claims["iss"], idp.sim.idp_issuer());
            }
        }
        // The access token beside it, and the next ID token, are sound.
        assert!(
            idp.verify(broken["access_token"].as_str().unwrap(), "00000003-0000-0000-c000-000000000000").await.is_ok()
        );
        let next = idp.tokens_for("bob", SCOPE).await;
        let sound = idp.verify(next["id_token"].as_str().unwrap(), DEV_APP_CLIENT_ID).await.unwrap();
        assert_eq!(sound["nonce"], "nonce-1", "after {fault:?}");
    }
}

#[tokio::test]
async fn a_confidential_client_must_present_its_secret() {
    let secret = "dev-app-secret";
    let idp = Idp::start_with(|c| c.client_secret = Some(dualkey::secret::Secret::new(secret))).await;
    let code = idp.code_for("bob", SCOPE).await;
    let (status, body) = idp.redeem(&code, VERIFIER, REDIRECT).await;
    assert_eq!((status, oauth_error(&body)), (StatusCode::UNAUTHORIZED, "invalid_client"));
    let code = idp.code_for("bob", SCOPE).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let response = idp.http.post(idp.sim.token_url()).basic_auth(DEV_APP_CLIENT_ID, Some(secret)).form(&form).send();
    assert_eq!(response.await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn sign_out_returns_to_a_loopback_uri_and_otherwise_shows_a_page() {
    let idp = Idp::start().await;
    let logout = idp.url("oauth2/v2.0/logout");
    let back = idp.http.get(&logout).query(&[("post_logout_redirect_uri", REDIRECT), ("state", "s")]).send();
    let back = back.await.unwrap();
    assert_eq!(back.status(), StatusCode::FOUND);
    assert_eq!(back.headers()[header::LOCATION], format!("{REDIRECT}?state=s"));
    let away = idp.http.get(&logout).query(&[("post_logout_redirect_uri", "https://evil.example/")]).send();
    let away = away.await.unwrap();
    assert_eq!(away.status(), StatusCode::OK);
    assert!(away.text().await.unwrap().contains("Signed out"));
}

#[tokio::test]
async fn client_credentials_still_issue_mde_tokens_beside_the_identity_provider() {
    let idp = Idp::start().await;
    let config = idp.sim.config();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", config.client_id.as_str()),
        ("client_secret", config.client_secret.as_ref().unwrap().expose()),
        ("scope", "https://api.securitycenter.microsoft.com/.default"),
    ];
    let (status, body) = idp.token(&form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("id_token").is_none() && body.get("refresh_token").is_none());
    assert_eq!(idp.sim.idp_grants("client_credentials"), 1);
    let (status, body) = idp.token(&[("grant_type", "password"), ("client_id", DEV_APP_CLIENT_ID)]).await;
    assert_eq!((status, oauth_error(&body)), (StatusCode::BAD_REQUEST, "unsupported_grant_type"));
}
