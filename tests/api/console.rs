//! The console over HTTP: sign-in through the development identity provider with every ID
//! token check, `state` bound to the browser, sessions that end, CSRF, step-up for decisions,
//! and the security headers. (The same flows in a real browser: `browser::console`.)

use crate::console_support::{Person, csrf_in, location};
use crate::helpers::*;
use dualkey::mde::simulator::IdTokenFault;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

const COMMENT: &str = "reimaged and scanned clean";

async fn console() -> MdeApp {
    spawn_console_app_with(|_| {}).await
}

/// alice requests a release of `machine` through the form; returns its id.
async fn request_via_form(alice: &Person, machine: &str) -> String {
    let csrf = alice.csrf("/ui/request").await;
    let r = alice
        .post("/ui/request", &[("csrf", &csrf), ("machine_id", machine), ("comment", COMMENT), ("ticket", "INC-1")])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    location(&r).strip_prefix("/ui/releases/").unwrap().to_string()
}

#[tokio::test]
async fn signing_in_sets_a_lax_http_only_session_cookie_and_records_the_sign_in() {
    let m = console().await;
    let bob = Person::signed_in(&m.app, "bob").await;
    let set = bob.set_cookies.lock().unwrap().clone();
    let session = set.iter().find(|c| c.starts_with("dualkey_session=")).expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(attr), "{session}");
    }
    assert!(!session.contains("Secure"), "served on loopback http: {session}");
    let login = set.iter().find(|c| c.starts_with("dualkey_login=")).expect("the sign-in binding cookie");
    assert!(login.contains("SameSite=Lax") && login.contains("HttpOnly"), "survives the cross-site redirect: {login}");

    let (status, html) = bob.page("/ui/").await;
    assert_eq!(status, StatusCode::OK);
    for link in ["Queue", "Request release", "Mine", "Audit", "Sign out"] {
        assert!(html.contains(&format!(">{link}<")), "{link}: {html}");
    }
    let signed_in = m.app.audit_actions("console_signed_in").await;
    assert_eq!(signed_in.len(), 1);
    assert_eq!(signed_in[0]["actor"], "bob", "the principal is the oid, as for API tokens");
    assert_eq!(signed_in[0]["details"]["amr"], serde_json::json!(["pwd"]));
    // Only hashes of the cookie are stored.
    let value = bob.cookie("dualkey_session").unwrap();
    let pool = m.app.raw_db().await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM console_sessions WHERE id_hash = $1 OR csrf_token = $2")
        .bind(&value)
        .bind(&value)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn every_broken_id_token_is_refused_and_signs_nobody_in() {
    let m = console().await;
    for fault in [
        IdTokenFault::BadSignature,
        IdTokenFault::WrongAudience,
        IdTokenFault::WrongNonce,
        IdTokenFault::Expired,
        IdTokenFault::WrongIssuer,
    ] {
        let bob = Person::new(&m.app);
        m.sim.break_next_id_token(fault);
        let r = bob.sign_in("bob", "/ui/").await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{fault:?}");
        assert!(r.text().await.unwrap().contains("Sign in"), "{fault:?}");
        assert!(bob.cookie("dualkey_session").is_none(), "{fault:?} signed bob in");
    }
    assert!(m.app.audit_actions("console_signed_in").await.is_empty());
    // The provider itself is fine: the next, unbroken sign-in works.
    Person::signed_in(&m.app, "bob").await;
}

#[tokio::test]
async fn the_state_is_bound_to_the_browser_that_started_the_sign_in_and_works_once() {
    let m = console().await;
    let bob = Person::new(&m.app);
    let authorize = bob.start_sign_in("?return_to=/ui/").await;
    let callback = bob.press_user(&authorize, "bob").await;

    // Another browser (no binding cookie, or its own) cannot finish bob's sign-in.
    let mallory = Person::new(&m.app);
    mallory.start_sign_in("?return_to=/ui/").await;
    let r = mallory.get(&callback).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(mallory.cookie("dualkey_session").is_none());
    // The attempt used the state up: it works once, for anyone.
    let r = bob.get(&callback).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // A made-up state, or none, is refused too.
    let r = bob.get("/ui/callback?code=abc&state=made-up").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = bob.get("/ui/callback?code=abc").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(bob.cookie("dualkey_session").is_none());

    // A sign-in that comes back after ten minutes is refused.
    let authorize = bob.start_sign_in("?return_to=/ui/").await;
    let callback = bob.press_user(&authorize, "bob").await;
    m.app.clock.advance(Duration::from_secs(601));
    assert_eq!(bob.get(&callback).await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_authorization_request_uses_pkce_s256_state_nonce_and_the_query_response_mode() {
    let m = console().await;
    let url = reqwest::Url::parse(&Person::new(&m.app).start_sign_in("?return_to=/ui/mine").await).unwrap();
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["response_mode"], "query");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], format!("{}/ui/callback", m.app.base));
    assert_eq!(q["scope"], "openid profile email");
    for k in ["state", "nonce", "code_challenge"] {
        assert!(q[k].len() >= 43, "{k}: {}", q[k]);
    }
    assert!(!q.contains_key("prompt"), "a plain sign-in does not force a new authentication");
}

#[tokio::test]
async fn every_console_answer_carries_the_security_headers_redirects_included() {
    let m = console().await;
    let bob = Person::signed_in(&m.app, "bob").await;
    let anon = Person::new(&m.app);
    let answers = [
        anon.get("/").await,
        anon.get("/ui/").await,
        anon.get("/ui/login?return_to=/ui/").await,
        anon.get("/ui/callback?state=nope").await,
        anon.get("/ui/assets/console.js").await,
        bob.get("/ui/").await,
        bob.post("/ui/request", &[("machine_id", "x")]).await,
        bob.get("/ui/nothing-here").await,
    ];
    for r in answers {
        let h = r.headers();
        let csp = h.get("content-security-policy").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{} {csp}", r.url());
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff", "{}", r.url());
        assert_eq!(h.get("referrer-policy").unwrap(), "same-origin", "{}", r.url());
    }
}

#[tokio::test]
async fn a_post_without_the_csrf_token_or_with_another_sessions_is_refused_and_changes_nothing() {
    let m = console().await;
    let alice = Person::signed_in(&m.app, "alice").await;
    let id = request_via_form(&alice, SEEDED).await;
    let bob = Person::signed_in(&m.app, "bob").await;
    let carol = Person::signed_in(&m.app, "carol").await;
    let carols = carol.csrf("/ui/").await;
    let path = format!("/ui/releases/{id}/approve");
    for form in [vec![], vec![("csrf", carols.as_str())], vec![("csrf", "")]] {
        let r = bob.post(&path, &form).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(r.text().await.unwrap().contains("csrf_token_invalid"));
    }
    // Without any session, a form changes nothing either.
    let r = Person::new(&m.app).post(&path, &[("csrf", carols.as_str())]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(m.app.release(&id).await["approvals"].as_array().unwrap().is_empty());
    assert!(m.app.audit_actions("approval_recorded").await.is_empty());
    assert!(m.app.audit_actions("approval_refused").await.is_empty());
}

#[tokio::test]
async fn the_requester_gets_cancel_not_approve_and_a_forged_approval_is_refused_in_plain_words() {
    let m = console().await;
    let alice = Person::signed_in(&m.app, "alice").await;
    let id = request_via_form(&alice, SEEDED).await;
    let (_, html) = alice.page(&format!("/ui/releases/{id}")).await;
    assert!(html.contains(">Cancel release<") && !html.contains(">Approve<") && !html.contains(">Reject<"), "{html}");
    assert!(html.contains("desktop-fin-01.contoso.com") && html.contains(COMMENT) && html.contains("INC-1"), "{html}");

    let csrf = csrf_in(&html).unwrap();
    let r = alice.post(&format!("/ui/releases/{id}/approve"), &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let html = r.text().await.unwrap();
    assert!(html.contains("a different person must approve it") && html.contains("self_approval_forbidden"), "{html}");
    assert_eq!(m.status(&id).await, "pending");

    let bob = Person::signed_in(&m.app, "bob").await;
    let (_, html) = bob.page(&format!("/ui/releases/{id}")).await;
    assert!(html.contains(">Approve<") && html.contains(">Reject<") && !html.contains(">Cancel release<"), "{html}");
    // A rejection needs a comment of the policy's length: refused with the reason, nothing stored.
    let csrf = csrf_in(&html).unwrap();
    let r = bob.post(&format!("/ui/releases/{id}/reject"), &[("csrf", &csrf), ("comment", "no")]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(m.status(&id).await, "pending");
    let r = bob
        .post(&format!("/ui/releases/{id}/approve"), &[("csrf", &csrf), ("comment", "checked with the owner")])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), format!("/ui/releases/{id}"));
    assert_eq!(m.status(&id).await, "approved");
    let recorded = m.app.audit_actions("approval_recorded").await;
    let console = &recorded[0]["details"]["console"];
    assert_eq!(console["amr"], serde_json::json!(["pwd"]), "{recorded:?}");
    assert!(console["signed_in_at"].is_string() && console["auth_time"].is_string(), "{recorded:?}");
}

#[tokio::test]
async fn a_decision_after_reauth_for_decision_sends_the_approver_to_sign_in_again_and_records_nothing() {
    let m = console().await;
    let alice = Person::signed_in(&m.app, "alice").await;
    let id = request_via_form(&alice, SEEDED).await;
    let bob = Person::signed_in(&m.app, "bob").await;
    let csrf = bob.csrf(&format!("/ui/releases/{id}")).await;
    // Within the session's idle time, past the decision's freshness (15 min by default).
    m.app.clock.advance(Duration::from_secs(16 * 60));
    let r = bob.post(&format!("/ui/releases/{id}/approve"), &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let login = location(&r);
    assert_eq!(login, format!("/ui/login?return_to=/ui/releases/{id}&reauth=1"));
    assert!(m.app.audit_actions("approval_recorded").await.is_empty(), "nothing recorded, nothing replayed");

    let authorize = bob.start_sign_in(login.strip_prefix("/ui/login").unwrap()).await;
    let q: std::collections::HashMap<String, String> =
        reqwest::Url::parse(&authorize).unwrap().query_pairs().into_owned().collect();
    assert_eq!((q["prompt"].as_str(), q["max_age"].as_str()), ("login", "900"));
    let back = bob.get(&bob.press_user(&authorize, "bob").await).await;
    assert_eq!(location(&back), format!("/ui/releases/{id}"), "back to the same release page");
    assert_eq!(m.status(&id).await, "pending");
    let csrf = bob.csrf(&format!("/ui/releases/{id}")).await;
    let r = bob.post(&format!("/ui/releases/{id}/approve"), &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(m.status(&id).await, "approved");
}

#[tokio::test]
async fn sign_out_ends_the_session_on_the_server_and_the_old_cookie_is_refused() {
    let m = console().await;
    let bob = Person::signed_in(&m.app, "bob").await;
    let old = bob.cookie("dualkey_session").unwrap();
    let csrf = bob.csrf("/ui/").await;
    let r = bob.post("/ui/logout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("You are signed out"));
    assert!(bob.cookie("dualkey_session").is_none(), "the browser was told to drop it");

    let replay = Person::new(&m.app);
    replay.set_cookie("dualkey_session", &old);
    let (_, html) = replay.page("/ui/").await;
    assert!(html.contains(">Sign in<") && !html.contains(">Sign out<"), "{html}");
    let r = replay.get(&format!("/ui/releases/{}/status", "01939a7e-0000-7000-8000-000000000000")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(m.app.audit_actions("console_signed_out").await.len(), 1);
}

#[tokio::test]
async fn a_session_ends_after_its_idle_time_and_after_its_maximum_however_busy() {
    let m = console().await;
    let bob = Person::signed_in(&m.app, "bob").await;
    m.app.clock.advance(Duration::from_secs(29 * 60));
    assert!(bob.page("/ui/").await.1.contains(">Sign out<"), "used within 30 min: still signed in");
    m.app.clock.advance(Duration::from_secs(31 * 60));
    assert!(bob.page("/ui/").await.1.contains(">Sign in<"), "idle for 31 min: signed out");

    let carol = Person::signed_in(&m.app, "carol").await;
    for _ in 0..16 {
        m.app.clock.advance(Duration::from_secs(29 * 60));
        assert!(carol.page("/ui/").await.1.contains(">Sign out<"));
    }
    m.app.clock.advance(Duration::from_secs(29 * 60));
    assert!(carol.page("/ui/").await.1.contains(">Sign in<"), "8 h after sign-in: signed out");
}

#[tokio::test]
async fn the_status_poll_does_not_keep_an_idle_session_alive() {
    let m = console().await;
    let alice = Person::signed_in(&m.app, "alice").await;
    let id = request_via_form(&alice, SEEDED).await;
    for _ in 0..4 {
        m.app.clock.advance(Duration::from_secs(10 * 60));
        let r = alice.get(&format!("/ui/releases/{id}/status")).await;
        if r.status() != StatusCode::OK {
            break;
        }
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], "pending");
    }
    assert!(alice.page("/ui/").await.1.contains(">Sign in<"), "40 min of polling is 40 min idle");
}

#[tokio::test]
async fn the_queue_puts_what_waits_for_me_first_and_the_audit_page_is_for_auditors() {
    let m = spawn_console_app_with(|s| {
        let value: toml::Value = toml::from_str(
            "[[rules]]\nname = \"tier0\"\nmatch = { computer_dns_names = [\"laptop-hr-07.contoso.com\"] }\nrequire = [ { role = \"Tier0.Owner\", count = 1 } ]\n",
        )
        .unwrap();
        s.policy = dualkey::rules::PolicyDocument::from_toml(value).unwrap();
    })
    .await;
    let alice = Person::signed_in(&m.app, "alice").await;
    let plain = request_via_form(&alice, SEEDED).await;
    let tier0 = request_via_form(&alice, SEEDED_2).await;
    let olga = Person::signed_in(&m.app, "olga").await;
    let (_, html) = olga.page("/ui/").await;
    let first = html.find("data-release-id=").map(|i| &html[i..i + 60]).unwrap();
    assert!(first.contains(&tier0), "olga's tier0 release first: {html}");
    assert!(html.contains(&format!(r#"data-release-id="{tier0}" class="waiting-for-me""#)), "{html}");
    assert!(!html.contains(&format!(r#"data-release-id="{plain}" class="waiting-for-me""#)), "{html}");

    let (status, html) = olga.page("/ui/audit").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    let audrey = Person::signed_in(&m.app, "audrey").await;
    let (status, html) = audrey.page("/ui/audit").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Chain intact") && html.contains("release_requested"), "{html}");
    let (_, mine) = alice.page("/ui/mine").await;
    assert!(mine.contains(&plain) && mine.contains(&tier0), "{mine}");
}
