//! The body deadline: a request's whole body must arrive within `server.body_timeout` of its
//! head, however slowly it trickles (a timeout between reads would let one byte every few
//! seconds hold the connection for ever).

use crate::error::ApiError;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Set when a request's body missed its deadline, so the answer becomes 408 whatever the
/// handler made of the failed read.
#[derive(Clone, Default)]
pub(super) struct Missed(Arc<AtomicBool>);

impl Missed {
    pub(super) fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// `req` with its body cut at `timeout` from now, and the flag that tells whether it was.
/// A request without a body is left as it is.
pub(super) fn with_deadline<B>(req: Request<B>, timeout: Duration) -> (Request<Body>, Missed)
where
    B: HttpBody<Data = axum::body::Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
    let missed = Missed::default();
    if req.body().is_end_stream() {
        return (req.map(Body::new), missed);
    }
    let flag = missed.clone();
    let req =
        req.map(|inner| Body::new(DeadlineBody { inner, sleep: Box::pin(tokio::time::sleep(timeout)), missed: flag }));
    (req, missed)
}

/// The answer to a request whose body missed its deadline, in place of `answered` (whose
/// request id it keeps); the connection closes after it.
pub(super) fn timeout_response(answered: &Response) -> Response {
    let mut response = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "body_timeout",
        "the request body did not arrive in time (server.body_timeout)",
    )
    .into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    if let Some(id) = answered.headers().get("x-request-id") {
        response.headers_mut().insert("x-request-id", id.clone());
    }
    response
}

struct DeadlineBody<B> {
    inner: B,
    sleep: Pin<Box<Sleep>>,
    missed: Missed,
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within server.body_timeout")]
struct BodyTimedOut;

impl<B> HttpBody for DeadlineBody<B>
where
    B: HttpBody + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, BoxError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.missed.0.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(BodyTimedOut.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
