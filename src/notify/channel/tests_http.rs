//! Sending to real HTTP receivers on 127.0.0.1:0: what each answer comes to, and what the
//! receiver got.

use super::summary::tests::{message, release_data};
use super::{Channel, Sender};
use crate::notify::Outcome;
use crate::settings::ChannelSettings;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What the receiver saw: headers and body of each POST.
type Seen = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A receiver answering `/ok` 200, `/busy` 503 with Retry-After: 30, `/bad` 400, `/moved` 302,
/// `/slow` after 5 s, and `/hooks/s3cr3t-token-path` 404 echoing the path.
async fn receiver() -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let record = |seen: Seen, answer: fn() -> axum::response::Response| {
        post(move |headers: HeaderMap, body: axum::body::Bytes| async move {
            seen.lock().unwrap().push((headers, body.to_vec()));
            answer()
        })
    };
    let app = axum::Router::new()
        .route("/ok", record(seen.clone(), || (StatusCode::OK, "1").into_response()))
        .route(
            "/busy",
            record(seen.clone(), || {
                (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "30")], "down for\nmaintenance")
                    .into_response()
            }),
        )
        .route("/bad", record(seen.clone(), || (StatusCode::BAD_REQUEST, "Invalid card payload").into_response()))
        .route(
            "/moved",
            record(seen.clone(), || {
                (StatusCode::FOUND, [(header::LOCATION, "https://elsewhere.example/")], "").into_response()
            }),
        )
        .route(
            "/hooks/s3cr3t-token-path",
            record(seen.clone(), || (StatusCode::NOT_FOUND, "Cannot POST /hooks/s3cr3t-token-path").into_response()),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

fn channel(kind: &str, url: &str) -> Channel {
    let secret = if kind == "webhook" { format!("secret = {SECRET:?}") } else { String::new() };
    let c: ChannelSettings =
        toml::from_str(&format!("name = \"c1\"\nkind = \"{kind}\"\nurl = {url:?}\n{secret}")).unwrap();
    Channel::from_settings(&c).unwrap()
}

async fn send(kind: &str, url: &str) -> crate::notify::Attempt {
    let data = release_data(Some("https://dualkey.contoso.com/console/releases/r1"));
    Sender::new(Duration::from_secs(2)).unwrap().send(&channel(kind, url), &message("release.requested", &data)).await
}

#[tokio::test]
async fn a_2xx_is_delivered_and_the_webhook_arrives_signed_as_sent() {
    let (addr, seen) = receiver().await;
    let attempt = send("webhook", &format!("http://{addr}/ok")).await;
    assert_eq!((attempt.outcome, attempt.status, attempt.response.as_str()), (Outcome::Delivered, Some(200), "1"));
    let (headers, body) = seen.lock().unwrap()[0].clone();
    let h = |n: &str| headers.get(n).unwrap().to_str().unwrap().to_string();
    assert_eq!(h("content-type"), "application/json");
    assert_eq!(h("webhook-id"), "msg_2a8f");
    // The attempt's time (now), not the event's (2021), so receivers' replay checks pass.
    let ts: i64 = h("webhook-timestamp").parse().unwrap();
    let now = crate::clock::Clock::now(&crate::clock::SystemClock).unix_ms() / 1000;
    assert!((now - 60..=now).contains(&ts), "{ts} vs {now}");
    let key = super::config::decode_signing_secret(&crate::secret::Secret::new(SECRET)).unwrap();
    assert_eq!(h("webhook-signature"), super::webhook::signature(&key, "msg_2a8f", ts, &body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (v["type"].as_str(), v["timestamp"].as_str()),
        (Some("release.requested"), Some("2021-02-25T15:02:10.000Z"))
    );
    assert_eq!(v["data"]["release"]["policy"]["rule"], "tier0");
}

#[tokio::test]
async fn teams_and_slack_post_their_json_and_a_2xx_is_delivered() {
    let (addr, seen) = receiver().await;
    for kind in ["teams", "slack"] {
        assert_eq!(send(kind, &format!("http://{addr}/ok")).await.outcome, Outcome::Delivered, "{kind}");
    }
    let seen = seen.lock().unwrap();
    let teams: serde_json::Value = serde_json::from_slice(&seen[0].1).unwrap();
    let slack: serde_json::Value = serde_json::from_slice(&seen[1].1).unwrap();
    assert_eq!(teams["attachments"][0]["content"]["type"], "AdaptiveCard");
    assert_eq!(slack["blocks"][0]["type"], "header");
    assert!(seen.iter().all(|(h, _)| h.get("webhook-signature").is_none()));
}

#[tokio::test]
async fn a_503_with_retry_after_is_retried_after_that_long() {
    let (addr, _) = receiver().await;
    let attempt = send("teams", &format!("http://{addr}/busy")).await;
    assert_eq!(
        attempt.outcome,
        Outcome::Retry { reason: "HTTP 503: down for maintenance".into(), retry_after: Some(Duration::from_secs(30)) }
    );
    assert_eq!((attempt.status, attempt.response.as_str()), (Some(503), "down for maintenance"));
}

#[tokio::test]
async fn a_400_is_dead_with_the_status_and_the_body() {
    let (addr, _) = receiver().await;
    let attempt = send("slack", &format!("http://{addr}/bad")).await;
    assert_eq!(attempt.outcome, Outcome::Dead { reason: "HTTP 400: Invalid card payload".into() });
}

#[tokio::test]
async fn a_302_is_dead_and_not_followed() {
    let (addr, seen) = receiver().await;
    let attempt = send("webhook", &format!("http://{addr}/moved")).await;
    assert_eq!(attempt.status, Some(302));
    assert!(matches!(&attempt.outcome, Outcome::Dead { reason } if reason.contains("redirects are not followed")));
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_receiver_echoing_the_url_does_not_put_it_in_the_outcome() {
    let (addr, _) = receiver().await;
    let attempt = send("teams", &format!("http://{addr}/hooks/s3cr3t-token-path")).await;
    let shown = format!("{attempt:?}");
    assert!(matches!(attempt.outcome, Outcome::Dead { .. }) && !shown.contains("s3cr3t"), "{shown}");
}

#[tokio::test]
async fn a_dropped_connection_or_a_refused_one_is_retried_without_the_url() {
    // Reads the request, then closes without answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
            drop(stream);
        }
    });
    let attempt = send("webhook", &format!("http://{addr}/s3cr3t-dropped")).await;
    assert_eq!(attempt.status, None);
    assert!(matches!(&attempt.outcome, Outcome::Retry { retry_after: None, .. }), "{attempt:?}");
    assert!(!format!("{attempt:?}").contains("s3cr3t"), "{attempt:?}");

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let attempt = send("slack", &format!("http://127.0.0.1:{port}/s3cr3t-refused")).await;
    assert!(
        matches!(&attempt.outcome, Outcome::Retry { reason, .. } if reason.starts_with("cannot connect")),
        "{attempt:?}"
    );
    assert!(!format!("{attempt:?}").contains("s3cr3t"), "{attempt:?}");
}

#[tokio::test]
async fn a_receiver_that_never_answers_is_retried_after_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and holds the connection open without a word.
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    let c = channel("teams", &format!("http://{addr}/hang"));
    let data = release_data(None);
    let attempt = Sender::new(Duration::from_millis(300)).unwrap().send(&c, &message("release.requested", &data)).await;
    assert!(
        matches!(&attempt.outcome, Outcome::Retry { reason, .. } if reason.starts_with("no answer within")),
        "{attempt:?}"
    );
    held.abort();
}
