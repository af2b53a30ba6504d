//! The sign-in page and the authorization code: what the page shows and refuses, and how a
//! code is bound to its client, redirect URI, PKCE verifier and lifetime.

use super::*;

#[tokio::test]
async fn the_sign_in_page_lists_the_six_dev_users_as_buttons_and_runs_no_script() {
    let idp = Idp::start().await;
    let (status, headers, page) = idp.authorize_page(&Idp::request(&[])).await;
    assert_eq!(status, StatusCode::OK);
    for (name, text) in [
        ("alice", "Alice (Release.Request)"),
        ("bob", "Bob (Release.Approve)"),
        ("carol", "Carol (Release.Approve)"),
        ("olga", "Olga (Tier0.Owner)"),
        ("audrey", "Audrey (Audit.Read)"),
        ("bree", "Bree (Release.BreakGlass)"),
    ] {
        let button = format!("<button type=\"submit\" name=\"user\" value=\"{name}\">{text}</button>");
        assert!(page.contains(&button), "no button for {name}");
    }
    assert!(page.contains("<form method=\"post\">"));
    assert!(page.contains("<input type=\"hidden\" name=\"state\" value=\"state-1\">"));
    assert!(page.contains("Development identity provider — not for production"));
    assert!(!page.contains("<script"));
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
}

#[tokio::test]
async fn the_sign_in_page_escapes_every_value_it_reflects() {
    let idp = Idp::start().await;
    let hostile = "\"><script>alert(1)</script>";
    let redirect = format!("{REDIRECT}?next=<b>'x'</b>");
    let params = Idp::request(&[("state", Some(hostile)), ("redirect_uri", Some(redirect.as_str()))]);
    let (status, _, page) = idp.authorize_page(&params).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("<script>") && !page.contains("<b>"), "{page}");
    assert!(page.contains("value=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\""), "{page}");
    assert!(page.contains("next=&lt;b&gt;&#39;x&#39;&lt;/b&gt;"), "{page}");
}

#[tokio::test]
async fn an_unknown_client_or_an_unregistered_redirect_uri_gets_a_page_and_no_redirect() {
    let idp = Idp::start().await;
    for changes in [
        vec![("client_id", Some("someone-else"))],
        vec![("client_id", None)],
        vec![("redirect_uri", Some("https://evil.example/callback"))],
        vec![("redirect_uri", Some("http://127.0.0.1.evil.example/callback"))],
        vec![("redirect_uri", None)],
    ] {
        let params = Idp::request(&changes);
        let (status, headers, page) = idp.authorize_page(&params).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{changes:?}");
        assert!(headers.get(header::LOCATION).is_none() && page.contains("Sign-in refused"), "{changes:?}");
        let pressed = idp.press(&params, "bob").await;
        assert_eq!(pressed.status(), StatusCode::BAD_REQUEST, "{changes:?}");
        assert!(pressed.headers().get(header::LOCATION).is_none());
    }
}

#[tokio::test]
async fn a_request_without_s256_pkce_or_for_another_response_type_goes_back_with_the_error_and_state() {
    let idp = Idp::start().await;
    for (changes, error) in [
        (vec![("code_challenge_method", Some("plain"))], "invalid_request"),
        (vec![("code_challenge_method", None)], "invalid_request"),
        (vec![("code_challenge", None)], "invalid_request"),
        (vec![("code_challenge", Some("too-short"))], "invalid_request"),
        (vec![("response_type", Some("token"))], "unsupported_response_type"),
        (vec![("scope", Some("openid https://graph.microsoft.com/.default"))], "invalid_scope"),
        (vec![("prompt", Some("none"))], "login_required"),
    ] {
        let params = Idp::request(&changes);
        for response in [
            idp.http.get(idp.url("oauth2/v2.0/authorize")).query(&params).send().await.unwrap(),
            idp.press(&params, "bob").await,
        ] {
            assert_eq!(response.status(), StatusCode::FOUND, "{changes:?}");
            let query = redirect_query(&response);
            assert_eq!(query["error"], error, "{changes:?}");
            assert_eq!(query["state"], "state-1");
            assert!(!query["error_description"].is_empty() && !query.contains_key("code"));
        }
    }
}

#[tokio::test]
async fn pressing_a_button_redirects_to_the_app_with_a_code_and_the_state() {
    let idp = Idp::start().await;
    let response = idp.press(&Idp::request(&[("prompt", Some("login")), ("max_age", Some("900"))]), "bob").await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let query = redirect_query(&response);
    assert_eq!(query["state"], "state-1");
    assert!(query["code"].len() >= 32, "{query:?}");
}

#[tokio::test]
async fn the_code_with_its_verifier_yields_an_id_token_that_verifies_against_the_jwks() {
    let idp = Idp::start().await;
    // Sign-in and token times follow the simulator's clock, not the machine's.
    idp.clock.advance(Duration::from_secs(3 * 3600));
    let pressed_at = idp.now_secs();
    let answer = idp.tokens_for("bob", SCOPE).await;
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["expires_in"], 3600);
    assert!(answer["refresh_token"].is_string() && answer["access_token"].is_string());
    let claims = idp.verify(answer["id_token"].as_str().unwrap(), DEV_APP_CLIENT_ID).await.unwrap();
    assert_eq!(claims["iss"], idp.sim.idp_issuer());
    assert_eq!(claims["aud"], DEV_APP_CLIENT_ID);
    assert_eq!(claims["nonce"], "nonce-1");
    assert_eq!(claims["oid"], "bob");
    assert_eq!(claims["tid"], idp.sim.config().tenant_id);
    assert_eq!(claims["name"], "Bob");
    assert_eq!(claims["preferred_username"], "bob@dualkey.dev");
    assert_eq!(claims["upn"], "bob@dualkey.dev");
    assert_eq!(claims["roles"], serde_json::json!(["Release.Approve"]));
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    assert_eq!(claims["ver"], "2.0");
    let auth_time = claims["auth_time"].as_i64().unwrap();
    assert!((auth_time - pressed_at).abs() <= 2, "auth_time {auth_time}, pressed at {pressed_at}");
    let iat = claims["iat"].as_i64().unwrap();
    assert!(iat >= auth_time && iat - auth_time <= 2);
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 3600);
    assert_ne!(claims["sub"], "bob", "sub is pairwise, not the user's name");
    assert_eq!(idp.sim.idp_grants("authorization_code"), 1);
}

#[tokio::test]
async fn a_wrong_verifier_is_refused_and_the_code_is_spent() {
    let idp = Idp::start().await;
    let code = idp.code_for("bob", SCOPE).await;
    let other = "another-verifier-that-is-long-enough-to-be-valid-0123456789";
    let (status, body) = idp.redeem(&code, other, REDIRECT).await;
    assert_eq!((status, oauth_error(&body)), (StatusCode::BAD_REQUEST, "invalid_grant"));
    let (status, body) = idp.redeem(&code, VERIFIER, REDIRECT).await;
    assert_eq!((status, oauth_error(&body)), (StatusCode::BAD_REQUEST, "invalid_grant"));
    let (status, body) = idp.redeem(&idp.code_for("bob", SCOPE).await, "short", REDIRECT).await;
    assert_eq!((status, oauth_error(&body)), (StatusCode::BAD_REQUEST, "invalid_grant"));
    assert_eq!(idp.sim.idp_grants("authorization_code"), 0);
}

#[tokio::test]
async fn a_code_redeems_once_and_its_replay_revokes_the_refresh_token_it_gave() {
    let idp = Idp::start().await;
    let code = idp.code_for("bob", SCOPE).await;
    let (status, first) = idp.redeem(&code, VERIFIER, REDIRECT).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = idp.redeem(&code, VERIFIER, REDIRECT).await;
    assert_eq!((status, oauth_error(&body)), (StatusCode::BAD_REQUEST, "invalid_grant"));
    let (status, body) = idp.refresh(first["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, oauth_error(&body)), (StatusCode::BAD_REQUEST, "invalid_grant"));
}

#[tokio::test]
async fn a_code_is_bound_to_its_redirect_uri_and_its_client() {
    let idp = Idp::start().await;
    let code = idp.code_for("bob", SCOPE).await;
    let (status, body) = idp.redeem(&code, VERIFIER, "http://127.0.0.1:4180/elsewhere").await;
    assert_eq!((status, oauth_error(&body)), (StatusCode::BAD_REQUEST, "invalid_grant"));
    let code = idp.code_for("bob", SCOPE).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "someone-else"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let (status, body) = idp.token(&form).await;
    assert_eq!((status, oauth_error(&body)), (StatusCode::UNAUTHORIZED, "invalid_client"));
}

#[tokio::test]
async fn a_code_expires_ten_minutes_after_the_sign_in_on_the_clock() {
    let idp = Idp::start().await;
    let code = idp.code_for("bob", SCOPE).await;
    idp.clock.advance(Duration::from_secs(601));
    let (status, body) = idp.redeem(&code, VERIFIER, REDIRECT).await;
    assert_eq!((status, oauth_error(&body)), (StatusCode::BAD_REQUEST, "invalid_grant"));
}
