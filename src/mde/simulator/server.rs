//! Serving: a hand-written accept loop, so a fault can close one request's connection without
//! an answer, and the middleware that records requests and applies queued faults.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::post;
use axum::{Extension, Router};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::faults::{FaultAction, RouteKind, SeenRequest};
use super::routes::api_router;
use super::state::Shared;
use super::token::token;
use super::wire::mde_error;

/// Lets a request close the connection it arrived on.
#[derive(Clone, Default)]
struct ConnControl(Arc<Notify>);

/// The whole simulator app: token endpoint, API (under `/api` and `/api/v1.0`), the dev
/// identity provider and the portal's stand-in.
pub(crate) fn app(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .merge(super::idp::router())
        .merge(super::portal::router())
        .nest("/api", api_router())
        .nest("/api/v1.0", api_router())
        .fallback(|| async { mde_error(StatusCode::NOT_FOUND, "NotFound", "The requested resource was not found.") })
        .layer(middleware::from_fn_with_state(shared.clone(), record_and_fault))
        .with_state(shared)
}

/// Serves `app` on `listener` until `shutdown` completes, then closes every connection.
pub(crate) async fn serve(listener: TcpListener, app: Router, shutdown: impl Future<Output = ()>) {
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "simulator accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let control = ConnControl::default();
                let service = TowerToHyperService::new(app.clone().layer(Extension(control.clone())));
                connections.spawn(async move {
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    // Dropping the connection future closes the socket with no answer.
                    tokio::select! {
                        _ = connection => {}
                        () = control.0.notified() => {}
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
}

async fn record_and_fault(State(sh): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let kind = RouteKind::classify(request.method(), request.uri().path());
    let control = request.extensions().get::<ConnControl>().cloned();
    let (index, fault) = {
        let mut state = sh.lock();
        state.requests.push(SeenRequest {
            method: request.method().to_string(),
            path: request.uri().path().to_owned(),
            kind,
            at: sh.now(),
            instant: sh.monotonic(),
            status: None,
        });
        (state.requests.len() - 1, state.take_fault(kind))
    };
    let response = match fault {
        Some(FaultAction::Delay(d)) => {
            sh.clock.sleep(d).await;
            next.run(request).await
        }
        Some(FaultAction::Drop) => drop_connection(control).await,
        Some(FaultAction::ProcessThenDelay(d)) => {
            let processed = next.run(request).await;
            sh.clock.sleep(d).await;
            processed
        }
        Some(FaultAction::ProcessThenDrop) => {
            let _processed = next.run(request).await;
            drop_connection(control).await
        }
        Some(respond) => match respond.response(kind) {
            Some(response) => response,
            None => next.run(request).await,
        },
        None => next.run(request).await,
    };
    sh.lock().requests[index].status = Some(response.status().as_u16());
    response
}

/// Closes the connection and never answers. Without a connection handle (not served by our
/// accept loop) there is nothing to close, which would make the fault lie: panic instead.
async fn drop_connection(control: Option<ConnControl>) -> Response {
    let control = control.expect("the simulator serves every connection through its accept loop");
    control.0.notify_one();
    std::future::pending().await
}
