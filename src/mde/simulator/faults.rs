//! Route kinds, injected faults and the request log the simulator keeps for tests.

use std::time::Duration;

use axum::http::Method;
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

use super::wire::{entra_error, mde_error};
use crate::clock::Monotonic;
use crate::mde::rate::Api;

/// Which simulator route a request hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKind {
    Token,
    Unisolate,
    Isolate,
    GetAction,
    ListActions,
    GetMachine,
    CancelAction,
    /// `GET /api/machines` (no id).
    ListMachines,
    /// The dev identity provider's pages and endpoints, except the token endpoint (`Token`).
    Idp,
    /// `POST /_simulator/machines/{id}/unisolate|isolate`: someone acting in the portal, not
    /// through the API; never counted against a rate budget.
    Portal,
    /// Anything else (answered 404).
    Other,
}

impl RouteKind {
    /// Classifies a request by method and path, `/api/` and `/api/v1.0/` alike.
    pub fn classify(method: &Method, path: &str) -> Self {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        if method == Method::POST && segments.ends_with(&["oauth2", "v2.0", "token"]) {
            return Self::Token;
        }
        if super::idp::is_idp_path(&segments) {
            return Self::Idp;
        }
        if method == Method::POST
            && matches!(segments.as_slice(), ["_simulator", "machines", _, "unisolate" | "isolate"])
        {
            return Self::Portal;
        }
        let rest = match segments.as_slice() {
            ["api", "v1.0", rest @ ..] | ["api", rest @ ..] => rest,
            _ => return Self::Other,
        };
        match (method.clone(), rest) {
            (Method::POST, ["machines", _, "unisolate"]) => Self::Unisolate,
            (Method::POST, ["machines", _, "isolate"]) => Self::Isolate,
            (Method::GET, ["machines"]) => Self::ListMachines,
            (Method::GET, ["machines", _]) => Self::GetMachine,
            (Method::GET, ["machineactions"]) => Self::ListActions,
            (Method::GET, ["machineactions", _]) => Self::GetAction,
            (Method::POST, ["machineactions", _, "cancel"]) => Self::CancelAction,
            _ => Self::Other,
        }
    }

    /// The rate-limited API this route belongs to, if any.
    pub fn api(self) -> Option<Api> {
        match self {
            Self::Unisolate => Some(Api::Unisolate),
            Self::Isolate => Some(Api::Isolate),
            Self::GetAction => Some(Api::GetAction),
            Self::ListActions => Some(Api::ListActions),
            Self::GetMachine => Some(Api::GetMachine),
            Self::CancelAction => Some(Api::CancelAction),
            Self::ListMachines => Some(Api::ListMachines),
            Self::Token | Self::Idp | Self::Portal | Self::Other => None,
        }
    }
}

/// What an injected fault does to a matching request.
#[derive(Debug, Clone)]
pub enum FaultAction {
    /// Answer at once with `status` and an error body with `code`/`message` (MDE's shape, or
    /// Entra's on the token route), plus `Retry-After` when given. Nothing is processed.
    Respond { status: u16, code: String, message: String, retry_after: Option<u64> },
    /// Wait this long, then process and answer normally.
    Delay(Duration),
    /// Close the connection without answering; nothing is processed.
    Drop,
    /// Process the request (an action IS created), then close the connection unanswered.
    ProcessThenDrop,
    /// Process the request (an action IS created), then hold the answer this long: the window
    /// in which a test kills the caller between MDE acting and the caller recording it.
    ProcessThenDelay(Duration),
}

impl FaultAction {
    /// A `Respond` fault with MDE's usual code for `status` and no `Retry-After`.
    pub fn status(status: u16) -> Self {
        let code = match status {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "ResourceNotFound",
            429 => "TooManyRequests",
            500 => "InternalServerError",
            _ => "ServiceUnavailable",
        };
        Self::Respond { status, code: code.into(), message: format!("Injected {status}"), retry_after: None }
    }

    /// A 429 `TooManyRequests` with `Retry-After: seconds`.
    pub fn too_many_requests(seconds: u64) -> Self {
        Self::Respond {
            status: 429,
            code: "TooManyRequests".into(),
            message: "Too many requests.".into(),
            retry_after: Some(seconds),
        }
    }

    pub(crate) fn response(&self, kind: RouteKind) -> Option<Response> {
        let Self::Respond { status, code, message, retry_after } = self else {
            return None;
        };
        let status = axum::http::StatusCode::from_u16(*status).ok()?;
        let mut response = if matches!(kind, RouteKind::Token | RouteKind::Idp) {
            entra_error(status, code, 0, message)
        } else {
            mde_error(status, code, message)
        };
        if let Some(seconds) = retry_after {
            let headers = response.headers_mut();
            headers.insert(axum::http::header::RETRY_AFTER, (*seconds).into());
        }
        Some(response.into_response())
    }
}

/// A fault applied to the next `times` requests of route `kind`, in injection order.
#[derive(Debug, Clone)]
pub struct Fault {
    pub kind: RouteKind,
    pub action: FaultAction,
    pub times: u32,
}

/// One request as the simulator saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub kind: RouteKind,
    /// Wall-clock receipt time, on the simulator's clock.
    pub at: OffsetDateTime,
    /// Monotonic receipt time on the simulator's clock, for window arithmetic.
    pub instant: Monotonic,
    /// The status answered; `None` if the connection was dropped unanswered.
    pub status: Option<u16>,
}

/// The most requests of one kind whose receipt times fit in any half-open 60 s window.
pub(super) fn max_in_rolling_minute(requests: &[SeenRequest], kind: RouteKind) -> usize {
    let mut times: Vec<Monotonic> = requests.iter().filter(|r| r.kind == kind).map(|r| r.instant).collect();
    times.sort();
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] >= times[start] + Duration::from_secs(60) {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}
