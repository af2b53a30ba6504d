//! The harness itself, against a few pages an axum router serves on loopback inside the test:
//! a click that runs a served script, forms and links by their visible names, separate cookies
//! per session, and waits that fail with the page in hand.

use super::*;
use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use std::collections::HashMap;
use std::time::Duration;

/// As the console's: scripts only from this origin, never inline.
const CSP: &str = "default-src 'self'; script-src 'self'; frame-ancestors 'none'";

const INDEX: &str = r#"<!doctype html><html><head><title>smoke</title><script src="/app.js" defer></script></head>
<body><p id="out" data-state="before">before</p>
<button type="button" id="go">  Change
  the text </button>
<button type="button" id="other">Bob's (Release.Approve)</button>
<a href="/form">Form</a>
<script>document.getElementById('out').textContent = 'inline script ran';</script>
</body></html>"#;

const APP_JS: &str = r#"document.getElementById('go').addEventListener('click', () => {
  const out = document.getElementById('out');
  out.textContent = 'changed by /app.js';
  out.dataset.state = 'after';
});"#;

const FORM: &str = r#"<!doctype html><html><head><title>form</title></head><body>
<form method="get" action="/echo"><label>Query <input name="q" id="q"></label>
<label for="note">Note</label> <textarea name="note" id="note"></textarea>
<button type="submit">Send</button></form></body></html>"#;

fn router() -> Router {
    let page = |body: &'static str| move || async move { ([(header::CONTENT_SECURITY_POLICY, CSP)], Html(body)) };
    Router::new()
        .route("/", get(page(INDEX)))
        .route("/form", get(page(FORM)))
        .route("/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], APP_JS) }))
        .route(
            "/echo",
            get(|Query(q): Query<HashMap<String, String>>| async move { format!("q={} note={}", q["q"], q["note"]) }),
        )
        .route(
            "/login",
            get(|| async { ([(header::SET_COOKIE, "who=alice; HttpOnly; SameSite=Lax; Path=/")], "signed in") }),
        )
        .route("/whoami", get(whoami))
}

async fn whoami(headers: HeaderMap) -> impl IntoResponse {
    let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let who = cookies.split("; ").find_map(|c| c.strip_prefix("who=")).unwrap_or("nobody");
    format!("you are {who}")
}

async fn serve() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router()).await.unwrap() });
    format!("http://{addr}")
}

async fn body_text(b: &Browser) -> Result<String, WdError> {
    b.find(&By::css("body")).await?.text().await
}

#[tokio::test]
async fn a_click_runs_the_served_script_and_changes_the_text_on_the_same_page() -> Result<(), WdError> {
    let Some(driver) = chromedriver_or_skip("browser::smoke::a_click_runs_the_served_script").await else {
        return Ok(());
    };
    let base = serve().await;
    let b = driver.session().await?;
    b.goto(&format!("{base}/")).await?;
    let out = By::css("#out");
    b.wait_for_text(&out, "before").await?; // the CSP kept the inline script from running
    b.execute("window.smokeMarker = 'still here';", vec![]).await?;

    b.find(&By::button("Change the text")).await?.click().await?;
    b.wait_for_text(&out, "changed by /app.js").await?;
    assert_eq!(b.find(&out).await?.attribute("data-state").await?.as_deref(), Some("after"));
    assert_eq!(b.execute("return window.smokeMarker;", vec![]).await?, "still here", "no navigation");
    assert_eq!(b.current_url().await?, format!("{base}/"));
    assert!(b.exists(&By::button_starting("Bob's")).await?, "a button found by the start of its text");

    let dir = tempfile::tempdir()?;
    let png = dir.path().join("smoke.png");
    b.screenshot(&png).await?;
    assert_eq!(&std::fs::read(&png)?[..8], b"\x89PNG\r\n\x1a\n");
    Ok(())
}

#[tokio::test]
async fn forms_and_links_are_driven_by_their_visible_names() -> Result<(), WdError> {
    let Some(driver) = chromedriver_or_skip("browser::smoke::forms_and_links_are_driven_by_their_visible_names").await
    else {
        return Ok(());
    };
    let base = serve().await;
    let b = driver.session().await?;
    b.goto(&format!("{base}/")).await?;
    b.find(&By::link("Form")).await?.click().await?;
    b.wait_for_url("the form page", |u| u.ends_with("/form")).await?;

    let q = b.find(&By::labelled("Query")).await?;
    q.send_keys("first").await?;
    q.clear().await?;
    q.send_keys("second try").await?;
    assert_eq!(q.property("value").await?, "second try");
    b.find(&By::labelled("Note")).await?.send_keys("by its label's for").await?;
    b.find(&By::button("Send")).await?.click().await?;
    b.wait_for_url("the echo page", |u| u.contains("/echo?")).await?;
    assert_eq!(body_text(&b).await?, "q=second try note=by its label's for");
    Ok(())
}

#[tokio::test]
async fn each_session_has_its_own_cookies_and_a_cookie_can_be_carried_into_another() -> Result<(), WdError> {
    let Some(driver) = chromedriver_or_skip("browser::smoke::each_session_has_its_own_cookies").await else {
        return Ok(());
    };
    let base = serve().await;
    let (a, b) = (driver.session().await?, driver.session().await?);
    a.goto(&format!("{base}/login")).await?;
    let who = a.cookie("who").await?.expect("the login cookie");
    assert_eq!((who.value.as_str(), who.http_only), ("alice", Some(true)));
    a.goto(&format!("{base}/whoami")).await?;
    assert_eq!(body_text(&a).await?, "you are alice");

    b.goto(&format!("{base}/whoami")).await?;
    assert_eq!(body_text(&b).await?, "you are nobody", "another session, another profile");
    assert!(b.cookies().await?.is_empty());
    b.add_cookie(&Cookie { name: who.name.clone(), value: who.value.clone(), ..Default::default() }).await?;
    b.refresh().await?;
    assert_eq!(body_text(&b).await?, "you are alice", "the carried cookie is sent");

    a.delete_cookie("who").await?;
    a.refresh().await?;
    assert_eq!(body_text(&a).await?, "you are nobody");
    Ok(())
}

#[tokio::test]
async fn a_wait_that_never_holds_fails_with_the_page_source_and_errors_carry_webdrivers_words() -> Result<(), WdError> {
    let Some(driver) = chromedriver_or_skip("browser::smoke::a_wait_that_never_holds_fails").await else {
        return Ok(());
    };
    let base = serve().await;
    let b = driver.session().await?;
    b.goto(&format!("{base}/form")).await?;

    let Err(e) = b.find(&By::css("#nothing-here")).await else { panic!("found #nothing-here") };
    assert_eq!(e.code(), Some("no such element"));
    assert!(e.to_string().contains("no such element"), "{e}");

    let never = b.wait_for_within(Duration::from_millis(200), "a heading", async || b.exists(&By::css("h1")).await);
    let e = never.await.expect_err("a timeout");
    assert!(matches!(&e, WdError::Timeout { page_source, .. } if page_source.contains(r#"action="/echo""#)), "{e}");
    assert!(b.page_source().await?.contains("<label>Query"));
    // A missing element counts as "not yet" while waiting, so this too ends as a timeout.
    let missing = b.wait_for_within(Duration::from_millis(100), "a missing element", async || {
        Ok(b.find(&By::css("#nothing-here")).await?.text().await? == "x")
    });
    assert!(matches!(missing.await, Err(WdError::Timeout { .. })));
    Ok(())
}
