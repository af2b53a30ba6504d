//! Slow and silent clients cannot hold the daemon: header, body and idle timeouts, a connection
//! limit answered 503, and a graceful stop that still lets in-flight requests finish. The
//! timeouts are set tiny here; a wait bounded at a few seconds only catches a connection that
//! is never closed.

use crate::helpers::*;
use dualkey::mde::simulator::{FaultAction, RouteKind};
use dualkey::settings::Settings;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Far longer than any timeout set here: a connection still open after it was never closed.
const NEVER: Duration = Duration::from_secs(5);

fn limits(header: &str, body: &str, idle: &str, max: u32) -> impl FnOnce(&mut Settings) {
    let (header, body, idle) = (header.parse().unwrap(), body.parse().unwrap(), idle.parse().unwrap());
    move |s: &mut Settings| {
        s.server.header_timeout = header;
        s.server.body_timeout = body;
        s.server.idle_timeout = idle;
        s.server.max_connections = max;
    }
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap()
}

/// Everything the server sends until it closes the connection, or `None` if it never does.
async fn until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(NEVER, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| String::from_utf8_lossy(&got).into_owned())
}

/// Sends `GET /healthz` on a kept-alive connection and reads its whole answer.
async fn healthz_on(stream: &mut TcpStream) -> String {
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: dualkey\r\n\r\n").await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"}") {
        let n = tokio::time::timeout(NEVER, stream.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed before answering: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let app = spawn_app_with(limits("100ms", "30s", "60s", 1024)).await;
    let mut silent = connect(&app).await;
    let answer = until_closed(&mut silent).await.expect("the silent connection is closed");
    assert_eq!(answer, "", "closed without an answer");
}

#[tokio::test]
async fn a_slowloris_sending_a_header_byte_at_a_time_is_closed() {
    let app = spawn_app_with(limits("200ms", "30s", "60s", 1024)).await;
    let mut slow = connect(&app).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: dualkey\r\nX-Slow: ").await.unwrap();
    // Bytes keep arriving, so only the head's deadline (not the 60 s idle timeout) can cut it.
    let mut closed = false;
    for _ in 0..(NEVER.as_millis() / 20) {
        if slow.write_all(b"a").await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(20), slow.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0) | Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => panic!("answered a head never finished: {}", String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(closed, "the slow head was cut");
}

#[tokio::test]
async fn a_body_whose_content_length_never_arrives_is_cut_at_the_body_timeout() {
    let app = spawn_app_with(limits("10s", "100ms", "60s", 1024)).await;
    let before = app.count("SELECT COUNT(*) FROM audit_log").await;
    let mut slow = connect(&app).await;
    let head = format!(
        "POST /api/v1/releases HTTP/1.1\r\nHost: dualkey\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        app.requester()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(br#"{"machine_id": "#).await.unwrap();
    let answer = until_closed(&mut slow).await.expect("the connection is closed");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"body_timeout""#), "{answer}");
    assert_eq!(app.count("SELECT COUNT(*) FROM releases").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log").await, before);

    // Without a token the body is never read: 401, and the connection is not kept waiting.
    let mut anonymous = connect(&app).await;
    anonymous
        .write_all(b"POST /api/v1/releases HTTP/1.1\r\nHost: dualkey\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let answer = until_closed(&mut anonymous).await.expect("the connection is closed");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}

#[tokio::test]
async fn past_max_connections_a_connection_gets_503_and_a_freed_slot_serves_again() {
    let app = spawn_app_with(limits("10s", "30s", "60s", 2)).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = connect(&app).await;
        assert!(healthz_on(&mut c).await.starts_with("HTTP/1.1 200"));
        held.push(c);
    }
    let mut third = connect(&app).await;
    third.write_all(b"GET /healthz HTTP/1.1\r\nHost: dualkey\r\n\r\n").await.unwrap();
    let answer = until_closed(&mut third).await.expect("the extra connection is closed");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("application/json"), "{answer}");
    assert!(answer.contains(r#""code":"too_many_connections""#), "{answer}");

    // The slots still serve their connections, and a slot freed serves a new one.
    assert!(healthz_on(&mut held[1]).await.starts_with("HTTP/1.1 200"));
    drop(held.remove(0));
    let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let mut status = None;
    for _ in 0..200 {
        if let Ok(r) = fresh.get(app.url("/healthz")).send().await {
            status = Some(r.status());
            if r.status() == StatusCode::OK {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status, Some(StatusCode::OK), "the freed slot serves /healthz again");
}

#[tokio::test]
async fn a_kept_alive_connection_left_idle_is_closed_after_the_idle_timeout() {
    let app = spawn_app_with(limits("10s", "30s", "100ms", 1024)).await;
    let mut c = connect(&app).await;
    assert!(healthz_on(&mut c).await.starts_with("HTTP/1.1 200"));
    let rest = until_closed(&mut c).await.expect("closed long before the 10 s header timeout");
    assert_eq!(rest, "");
}

#[tokio::test]
async fn requests_work_as_usual_within_tight_limits() {
    let app = spawn_app_with(limits("200ms", "200ms", "200ms", 4)).await;
    let id = app.create_release(1).await["id"].as_str().unwrap().to_string();
    assert_eq!(app.approve(&id, &app.approver("bob")).await.status(), StatusCode::OK);
    assert_eq!(app.release(&id).await["status"], "approved");
}

#[tokio::test]
async fn stopping_lets_an_in_flight_request_finish_and_accepts_no_new_connection() {
    let app = spawn_app().await;
    app.sim.inject(RouteKind::GetMachine, FaultAction::Delay(Duration::from_millis(200)), 1);
    let in_flight = tokio::spawn(
        app.http
            .post(app.url("/api/v1/releases"))
            .bearer_auth(app.requester())
            .json(&json!({"machine_id": machine(1), "comment": "reimaged and scanned clean"}))
            .send(),
    );
    for _ in 0..500 {
        if app.sim.count(RouteKind::GetMachine) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(app.sim.count(RouteKind::GetMachine), 1, "the request is in flight");
    let addr = app.base.trim_start_matches("http://").to_string();
    app.stop().await;
    let r = in_flight.await.unwrap().unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "the in-flight request finished");
    assert!(TcpStream::connect(&addr).await.is_err(), "no new connection after the stop");
}
