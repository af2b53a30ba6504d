//! A webhook receiver the notification tests start on loopback: it records every request and
//! answers with the statuses a test queues (200 once the queue is empty).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The bytes of the webhook secret the notification tests configure.
pub const SECRET_BYTES: &[u8] = b"a-test-secret-of-thirty-two-byte";

/// "whsec_" + base64 of [`SECRET_BYTES`], as Standard Webhooks writes a secret.
pub fn whsec() -> String {
    use base64::Engine;
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(SECRET_BYTES))
}

/// HMAC-SHA256 (RFC 2104) from SHA-256 alone, apart from the code under test.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let (mut inner, mut outer) = (Sha256::new(), Sha256::new());
    inner.update(k.map(|b| b ^ 0x36));
    for p in parts {
        inner.update(p);
    }
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().to_vec()
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: serde_json::Value,
    pub raw: Vec<u8>,
    /// What it answered.
    pub status: u16,
}

impl Received {
    /// A header's value; panics when it is missing.
    pub fn header(&self, name: &str) -> String {
        self.headers.get(name).unwrap_or_else(|| panic!("no {name} header")).to_str().unwrap().to_string()
    }

    /// Whether its Standard Webhooks signature (HMAC-SHA256 of "{id}.{timestamp}.{body}" with
    /// [`SECRET_BYTES`]) verifies.
    pub fn signed(&self) -> bool {
        use base64::Engine;
        let (id, ts) = (self.header("webhook-id"), self.header("webhook-timestamp"));
        let expected = base64::engine::general_purpose::STANDARD
            .encode(hmac_sha256(SECRET_BYTES, &[format!("{id}.{ts}.").as_bytes(), &self.raw]));
        self.header("webhook-signature") == format!("v1,{expected}")
    }
}

/// How the receiver answers the next request.
#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16),
    /// A status with `Retry-After: secs`.
    RetryAfter(u16, u64),
    /// Holds the request this long (real time) before answering 200.
    Hang(Duration),
}

#[derive(Default)]
struct Inner {
    answers: VecDeque<Answer>,
    received: Vec<Received>,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    _stop: Arc<tokio::sync::oneshot::Sender<()>>,
}

impl Receiver {
    /// Starts on 127.0.0.1 on a free port.
    pub async fn start() -> Self {
        Self::start_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await
    }

    /// Starts on `listener` (a test that brings a receiver back on the same port binds it again).
    pub async fn start_on(listener: tokio::net::TcpListener) -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let app = Router::new().route("/hook", axum::routing::post(receive)).with_state(inner.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Self { url, inner, _stop: Arc::new(tx) }
    }

    /// Queues how the next requests are answered.
    pub fn answer(&self, answers: impl IntoIterator<Item = Answer>) {
        self.inner.lock().unwrap().answers.extend(answers);
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// The `type` of each message accepted (answered 2xx), in order.
    pub fn delivered_types(&self) -> Vec<String> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .map(|r| r.body["type"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

async fn receive(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = inner.lock().unwrap().answers.pop_front().unwrap_or(Answer::Status(200));
    if let Answer::Hang(d) = answer {
        tokio::time::sleep(d).await;
    }
    let status = match answer {
        Answer::Status(s) | Answer::RetryAfter(s, _) => s,
        Answer::Hang(_) => 200,
    };
    inner.lock().unwrap().received.push(Received {
        headers,
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        raw: body.to_vec(),
        status,
    });
    let code = StatusCode::from_u16(status).unwrap();
    match answer {
        Answer::RetryAfter(_, secs) => (code, [("retry-after", secs.to_string())], "slow down").into_response(),
        _ => (code, "ok").into_response(),
    }
}
