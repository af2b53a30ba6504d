//! Issue 9's console, in headless Chromium against the real daemon (background worker on) and
//! the simulator's dev identity provider. Each person is a browser session of their own; the
//! daemon's time moves only when the test advances its ManualClock.

use super::*;
use crate::helpers::*;
use reqwest::StatusCode;
use std::time::Duration;

const SESSION_COOKIE: &str = "dualkey_session";

/// The console's daemon with its background worker on, so releases go all the way to MDE.
async fn console_app() -> MdeApp {
    spawn_console_app_with(|s| s.mde.worker_enabled = true).await
}

/// Opens `path` on the console, presses "Sign in", picks `who` on the dev IdP's page and waits
/// to be back on `path`, signed in.
async fn sign_in(driver: &ChromeDriver, app: &TestApp, who: &str, path: &str) -> Result<Browser, WdError> {
    let b = driver.session().await?;
    b.goto(&app.url(path)).await?;
    b.find(&By::button("Sign in")).await?.click().await?;
    pick_user(&b, who).await?;
    back_signed_in(&b, app, path).await?;
    Ok(b)
}

/// On the dev IdP's authorize page: presses the button whose text starts with `who`.
async fn pick_user(b: &Browser, who: &str) -> Result<(), WdError> {
    let button = By::button_starting(who);
    b.wait_for(&format!("the sign-in page's {who} button"), async || b.exists(&button).await).await?;
    b.find(&button).await?.click().await
}

/// Waits until the browser is on the console's `path` with a "Sign out" button.
async fn back_signed_in(b: &Browser, app: &TestApp, path: &str) -> Result<(), WdError> {
    let want = app.url(path);
    b.wait_for(&format!("{want}, signed in"), async || {
        Ok(b.current_url().await? == want && b.exists(&By::button("Sign out")).await?)
    })
    .await
}

/// Through the "Request release" page: returns the new release's id, from the page it lands on.
async fn request_in_console(b: &Browser, machine_id: &str) -> Result<String, WdError> {
    b.find(&By::link("Request release")).await?.click().await?;
    b.wait_for("the request form", async || b.exists(&By::labelled("Machine ID")).await).await?;
    b.find(&By::labelled("Machine ID")).await?.send_keys(machine_id).await?;
    b.find(&By::labelled("Comment")).await?.send_keys("reimaged and scanned clean").await?;
    b.find(&By::labelled("Ticket")).await?.send_keys("INC-4711").await?;
    b.find(&By::button("Request release")).await?.click().await?;
    let url = b.wait_for_url("the new release's page", |u| u.contains("/ui/releases/")).await?;
    Ok(url.rsplit('/').next().unwrap_or_default().to_string())
}

/// The text of the release page's `#status`.
async fn status_on_page(b: &Browser) -> Result<String, WdError> {
    b.find(&By::css("#status")).await?.text().await
}

/// The session cookie's value in `b`.
async fn session_cookie(b: &Browser) -> Result<String, WdError> {
    Ok(b.cookie(SESSION_COOKIE).await?.expect("a session cookie").value)
}

/// The CSRF token of the current page's first form.
async fn csrf_token(b: &Browser) -> Result<String, WdError> {
    Ok(b.find(&By::css("input[name=csrf]")).await?.attribute("value").await?.expect("a csrf value"))
}

/// A POST of `form` to the console with `cookie` as the session, as a forger would send it:
/// no browser, redirects not followed.
async fn post_form(app: &TestApp, path: &str, cookie: &str, form: &[(&str, &str)]) -> reqwest::Response {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    http.post(app.url(path))
        .header(reqwest::header::COOKIE, format!("{SESSION_COOKIE}={cookie}"))
        .form(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn alice_requests_and_bob_approves_in_another_browser_and_the_page_shows_succeeded_without_a_reload()
-> Result<(), WdError> {
    let Some(driver) = chromedriver_or_skip("browser::console::alice_requests_and_bob_approves").await else {
        return Ok(());
    };
    let m = console_app().await;
    let app = &m.app;
    let alice = sign_in(&driver, app, "Alice", "/ui/").await?;
    let id = request_in_console(&alice, &machine(1)).await?;
    assert_eq!(status_on_page(&alice).await?, "pending");
    let release = app.release(&id).await;
    assert_eq!((release["status"].as_str(), release["requested_by"].as_str()), (Some("pending"), Some("alice")));

    let bob = sign_in(&driver, app, "Bob", "/ui/").await?;
    let row = By::css(&format!("#queue tr.waiting-for-me[data-release-id='{id}']"));
    assert!(bob.exists(&row).await?, "the release waits for bob, first in his queue");
    bob.find(&By::css(&format!("#queue tr[data-release-id='{id}'] a"))).await?.click().await?;
    let page = app.url(&format!("/ui/releases/{id}"));
    bob.wait_for_url("the release page", |u| u == page).await?;
    bob.find(&By::labelled("Comment")).await?.send_keys("checked with the analyst").await?;
    bob.find(&By::button("Approve")).await?.click().await?;
    bob.wait_for("the approval to show", async || Ok(status_on_page(&bob).await? != "pending")).await?;
    assert_eq!(bob.current_url().await?, page);

    // From here on the page must update itself: a marker on it survives only without a reload.
    bob.execute("window.dualkeyMarker = 'same page';", vec![]).await?;
    assert_ne!(status_on_page(&bob).await?, "succeeded", "the clock has not moved, so MDE has not finished");
    bob.wait_for("the page to show succeeded", async || {
        app.clock.advance(Duration::from_millis(100));
        Ok(status_on_page(&bob).await? == "succeeded")
    })
    .await?;
    assert_eq!(bob.execute("return window.dualkeyMarker;", vec![]).await?, "same page", "no reload");
    assert_eq!(bob.find(&By::css("#status")).await?.attribute("data-status").await?.as_deref(), Some("succeeded"));
    let release = app.release(&id).await;
    assert_eq!(release["status"], "succeeded");
    let mde_status = bob.find(&By::css("#mde-action-status")).await?.text().await?;
    assert_eq!(Some(mde_status.as_str()), release["mde_action_status"].as_str(), "the MDE action, updated in place");
    let approvals = app.audit_actions("approval_recorded").await;
    assert_eq!((approvals.len(), approvals[0]["actor"].as_str()), (1, Some("bob")));

    if std::env::var("DUALKEY_SCREENSHOT").as_deref() == Ok("1") {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console-release.png");
        bob.screenshot(&path).await?;
        println!("screenshot saved: {}", path.display());
    }
    Ok(())
}

#[tokio::test]
async fn the_requester_has_no_approve_button_and_an_approval_forged_from_her_session_is_refused() -> Result<(), WdError>
{
    let Some(driver) = chromedriver_or_skip("browser::console::the_requester_has_no_approve_button").await else {
        return Ok(());
    };
    let m = console_app().await;
    let app = &m.app;
    let alice = sign_in(&driver, app, "Alice", "/ui/").await?;
    let id = request_in_console(&alice, &machine(2)).await?;
    assert!(!alice.exists(&By::button("Approve")).await?, "no Approve for the requester");
    assert!(!alice.exists(&By::button("Reject")).await?, "no Reject for the requester");
    assert!(alice.exists(&By::button("Cancel release")).await?, "she may cancel instead");

    // Her own cookie and her own valid CSRF token (from her Cancel form): only the rule stops it.
    let (cookie, csrf) = (session_cookie(&alice).await?, csrf_token(&alice).await?);
    let r = post_form(app, &format!("/ui/releases/{id}/approve"), &cookie, &[("csrf", &csrf), ("comment", "me")]).await;
    assert!(!r.status().is_redirection(), "no redirect to a recorded decision: {}", r.status());
    let body = r.text().await.unwrap();
    assert!(body.contains(r#"role="alert""#) && body.contains("self_approval_forbidden"), "{body}");

    assert_eq!(app.release(&id).await["status"], "pending");
    assert_eq!(app.count("SELECT COUNT(*) FROM approvals").await, 0);
    assert!(app.audit_actions("approval_recorded").await.is_empty());
    let refused = app.audit_actions("approval_refused").await;
    assert_eq!((refused.len(), refused[0]["actor"].as_str()), (1, Some("alice")), "the attempt is on the record");
    alice.refresh().await?;
    assert_eq!(status_on_page(&alice).await?, "pending");
    Ok(())
}

#[tokio::test]
async fn a_decision_posted_without_the_csrf_token_or_with_another_sessions_is_refused_with_403_and_changes_nothing()
-> Result<(), WdError> {
    let Some(driver) = chromedriver_or_skip("browser::console::a_decision_posted_without_the_csrf_token").await else {
        return Ok(());
    };
    let m = console_app().await;
    let app = &m.app;
    let alice = sign_in(&driver, app, "Alice", "/ui/").await?;
    let id = request_in_console(&alice, &machine(3)).await?;
    let alices_csrf = csrf_token(&alice).await?;
    let path = format!("/ui/releases/{id}");
    let bob = sign_in(&driver, app, "Bob", &path).await?;
    let cookie = session_cookie(&bob).await?;
    let entries = app.audit().await.len();

    let approve = format!("{path}/approve");
    let r = post_form(app, &approve, &cookie, &[("comment", "no token")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = post_form(app, &approve, &cookie, &[("csrf", &alices_csrf), ("comment", "her token")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = post_form(app, &format!("{path}/reject"), &cookie, &[("comment", "no token either")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.release(&id).await["status"], "pending");
    assert_eq!(app.audit().await.len(), entries, "not even a refusal is recorded");

    // The same decision through his own page, token included, goes through.
    bob.find(&By::button("Approve")).await?.click().await?;
    bob.wait_for("the approval to show", async || Ok(status_on_page(&bob).await? != "pending")).await?;
    assert_eq!(app.audit_actions("approval_recorded").await.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_decision_after_reauth_for_decision_sends_bob_through_sign_in_and_back_to_decide_again() -> Result<(), WdError>
{
    let Some(driver) = chromedriver_or_skip("browser::console::a_decision_after_reauth_for_decision").await else {
        return Ok(());
    };
    let m = console_app().await;
    let app = &m.app;
    let alice = sign_in(&driver, app, "Alice", "/ui/").await?;
    let id = request_in_console(&alice, &machine(4)).await?;
    let path = format!("/ui/releases/{id}");
    let bob = sign_in(&driver, app, "Bob", &path).await?;

    // Past reauth_for_decision (15 min), within session_idle (30 min).
    app.clock.advance(Duration::from_secs(16 * 60));
    bob.find(&By::button("Approve")).await?.click().await?;
    let idp = bob.wait_for_url("the IdP's sign-in page", |u| u.contains("/oauth2/v2.0/authorize")).await?;
    assert!(idp.contains("prompt=login") && idp.contains("max_age="), "{idp}");
    assert_eq!(app.release(&id).await["status"], "pending", "the stale decision recorded nothing");
    assert!(app.audit_actions("approval_recorded").await.is_empty());

    pick_user(&bob, "Bob").await?;
    back_signed_in(&bob, app, &path).await?;
    assert_eq!(status_on_page(&bob).await?, "pending", "the decision is not replayed");
    bob.find(&By::button("Approve")).await?.click().await?;
    bob.wait_for("the approval to show", async || Ok(status_on_page(&bob).await? != "pending")).await?;
    let approvals = app.audit_actions("approval_recorded").await;
    assert_eq!((approvals.len(), approvals[0]["actor"].as_str()), (1, Some("bob")));
    assert_ne!(app.release(&id).await["status"], "pending");
    // Recorded under the fresh sign-in: its auth_time, not the stale one's.
    let bobs: Vec<_> =
        app.audit_actions("console_signed_in").await.into_iter().filter(|e| e["actor"] == "bob").collect();
    assert_eq!(bobs.len(), 2, "bob signed in twice");
    let console = &approvals[0]["details"]["console"];
    assert_eq!(console["auth_time"], bobs[1]["details"]["auth_time"]);
    assert_ne!(console["auth_time"], bobs[0]["details"]["auth_time"]);
    assert_eq!(console["amr"], serde_json::json!(["pwd"]));
    Ok(())
}

#[tokio::test]
async fn signing_out_ends_the_session_and_the_old_cookie_is_refused_in_a_browser_and_over_http() -> Result<(), WdError>
{
    let Some(driver) = chromedriver_or_skip("browser::console::signing_out_ends_the_session").await else {
        return Ok(());
    };
    let m = console_app().await;
    let app = &m.app;
    let bob = sign_in(&driver, app, "Bob", "/ui/").await?;
    let old = bob.cookie(SESSION_COOKIE).await?.expect("a session cookie");
    let csrf = csrf_token(&bob).await?;
    let signed_in_page = |body: &str| body.contains(">Sign out<");
    let r = app.http.get(app.url("/ui/")).header("cookie", format!("{SESSION_COOKIE}={}", old.value)).send().await;
    assert!(signed_in_page(&r.unwrap().text().await.unwrap()), "the cookie works while the session lives");
    // A decision on a release that does not exist: a live session gets as far as looking it up.
    let decide = "/ui/releases/00000000-0000-7000-8000-000000000000/approve";
    let r = post_form(app, decide, &old.value, &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    bob.find(&By::button("Sign out")).await?.click().await?;
    bob.wait_for("the signed-out page", async || bob.exists(&By::button("Sign in")).await).await?;
    assert!(!bob.exists(&By::button("Sign out")).await?);

    let fresh = driver.session().await?;
    fresh.goto(&app.url("/ui/")).await?;
    fresh.add_cookie(&Cookie { name: old.name.clone(), value: old.value.clone(), ..Default::default() }).await?;
    fresh.refresh().await?;
    assert!(fresh.exists(&By::button("Sign in")).await?, "the old cookie signs nobody in");
    assert!(!fresh.exists(&By::button("Sign out")).await?);

    let r = app.http.get(app.url("/ui/")).header("cookie", format!("{SESSION_COOKIE}={}", old.value)).send().await;
    let body = r.unwrap().text().await.unwrap();
    assert!(!signed_in_page(&body) && body.contains(">Sign in<"), "{body}");
    let r = post_form(app, decide, &old.value, &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "a POST with it finds no session either");
    assert!(r.text().await.unwrap().contains("session_required"));
    assert_eq!(app.count("SELECT COUNT(*) FROM console_sessions WHERE ended_at IS NULL").await, 0);
    let signed_out = app.audit_actions("console_signed_out").await;
    assert_eq!((signed_out.len(), signed_out[0]["actor"].as_str()), (1, Some("bob")));
    Ok(())
}

#[tokio::test]
async fn a_sign_in_from_localhost_survives_the_cross_site_round_trip_through_the_identity_provider()
-> Result<(), WdError> {
    let Some(driver) = chromedriver_or_skip("browser::console::a_sign_in_from_localhost_survives").await else {
        return Ok(());
    };
    // The console on `localhost`, the identity provider on `127.0.0.1`: two sites, so the
    // provider's redirect back is a cross-site top-level navigation, as with Entra ID. Only a
    // `SameSite=Lax` (or `None`) sign-in cookie comes back with it.
    let addr = free_loopback_addr();
    let port = addr.rsplit(':').next().unwrap().to_string();
    let public = format!("http://localhost:{port}");
    let m = spawn_console_app_with(|s| {
        s.server.bind = addr.clone();
        s.console.public_url = Some(public.clone());
    })
    .await;
    let b = driver.session().await?;
    b.goto(&format!("{public}/ui/mine")).await?;
    b.find(&By::button("Sign in")).await?.click().await?;
    b.wait_for_url("the identity provider on 127.0.0.1", |u| u.starts_with(m.sim.base_url())).await?;
    pick_user(&b, "Alice").await?;
    let mine = format!("{public}/ui/mine");
    b.wait_for(&format!("{mine}, signed in"), async || {
        Ok(b.current_url().await? == mine && b.exists(&By::button("Sign out")).await?)
    })
    .await?;
    assert_eq!(m.app.audit_actions("console_signed_in").await.len(), 1);
    Ok(())
}
