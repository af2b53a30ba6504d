//! Serving HTTP/1.1 with limits, so slow or silent clients cannot hold the daemon: a request
//! head must arrive within `server.header_timeout` (a connection that sends nothing is closed
//! then too), its body within `server.body_timeout` (else 408 and close), a connection idle for
//! `server.idle_timeout` is closed, and at most `server.max_connections` are served at once
//! (one more is answered 503 and closed). Shutdown is graceful: no new connections, idle ones
//! close, in-flight requests finish.

mod body;
mod idle;

use crate::clock::SharedClock;
use crate::logsafe::{Admit, LogLimiter};
use crate::settings::ServerSettings;
use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use idle::{Activity, Watched};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Connections over `max_connections` answered 503 at once; past this many, they are closed
/// without an answer (an answer costs a task and a file descriptor for up to [`BUSY_LINGER`]).
const BUSY_ANSWERS: usize = 64;
/// The longest a 503 answer waits for the client to read it and hang up.
const BUSY_LINGER: Duration = Duration::from_secs(1);

/// The connection limits of `[server]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: u32,
}

impl From<&ServerSettings> for Limits {
    fn from(s: &ServerSettings) -> Self {
        Self {
            header_timeout: s.header_timeout.get(),
            body_timeout: s.body_timeout.get(),
            idle_timeout: s.idle_timeout.get(),
            max_connections: s.max_connections,
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then lets open
/// connections finish their requests and returns once all are closed.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    clock: SharedClock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let busy_answers = Arc::new(Semaphore::new(BUSY_ANSWERS));
    let busy_log = LogLimiter::new(1, Duration::from_secs(10));
    let closing = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                tokio::spawn(connection(stream, app.clone(), limits, closing.clone(), slot));
            }
            Err(_) => {
                if let Admit::Log { suppressed } = busy_log.admit(clock.now()) {
                    let max_connections = limits.max_connections;
                    tracing::warn!(
                        max_connections,
                        refused_since_last_line = suppressed,
                        "connection refused: too many open"
                    );
                }
                answer_busy(stream, &busy_answers);
            }
        }
    }
    drop(listener);
    closing.cancel();
    // Every connection holds a slot until it is closed.
    let _ = slots.acquire_many(limits.max_connections).await;
}

/// Accept errors that concern one connection are skipped; others (e.g. out of file
/// descriptors) are logged and accepting pauses, as axum does, so the loop does not spin.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; pausing for a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// One connection, from accept to close.
async fn connection(
    stream: TcpStream,
    app: Router,
    limits: Limits,
    closing: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let activity = Activity::new();
    let io = TokioIo::new(Watched::new(stream, activity.clone()));
    let app = TowerToHyperService::new(app);
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let handling = requests.handling();
        let (req, missed) = body::with_deadline(req, limits.body_timeout);
        let answer = app.call(req);
        async move {
            let response = answer.await.unwrap_or_else(|e: Infallible| match e {});
            drop(handling);
            Ok::<_, Infallible>(if missed.get() { body::timeout_response(&response) } else { response })
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let idle = activity.idle_for(limits.idle_timeout);
    tokio::pin!(idle);
    let mut draining = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "connection closed");
                }
                return;
            }
            _ = closing.cancelled(), if !draining => {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            _ = &mut idle => {
                tracing::debug!(idle_timeout = ?limits.idle_timeout, "closing an idle connection");
                return;
            }
        }
    }
}

/// Answers a connection over the limit with 503 and the API's error body, then closes it, when
/// fewer than [`BUSY_ANSWERS`] such answers are under way; otherwise closes it at once.
fn answer_busy(stream: TcpStream, answers: &Arc<Semaphore>) {
    let Ok(answering) = answers.clone().try_acquire_owned() else { return };
    tokio::spawn(async move {
        let _answering = answering;
        let _ = tokio::time::timeout(BUSY_LINGER, write_busy(stream)).await;
    });
}

async fn write_busy(mut stream: TcpStream) -> io::Result<()> {
    let body = serde_json::json!({"error": {
        "code": "too_many_connections",
        "message": "the server is serving server.max_connections connections; try again shortly",
    }})
    .to_string();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(format!("{head}{body}").as_bytes()).await?;
    stream.shutdown().await?;
    // Read what the client sent until it hangs up: closing with unread data would reset the
    // connection, and a reset can destroy the answer before the client has read it.
    let mut sink = [0u8; 4096];
    while stream.read(&mut sink).await? > 0 {}
    Ok(())
}
