//! Someone acting in the Defender portal instead of through the API (Action center, "Undo"
//! isolation): an action by another requestor, counted against no rate budget. Lets tests and
//! demos show what happens when MDE is used around dualkey's two-person rule.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

use super::routes::not_found;
use super::state::{ActionRecord, PORTAL, Shared};
use super::wire::{Reject, WireAction, reject};
use crate::mde::types::ActionType;

/// Who acts in the portal when the request does not say.
pub(super) const DEFAULT_REQUESTOR: &str = "portal-user@contoso.com";

/// `POST /_simulator/machines/{id}/unisolate` and `/isolate`, with an optional JSON body
/// `{"requestor": "...", "comment": "..."}`; no bearer token. Answers 201 with the action.
pub(super) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_simulator/machines/{id}/unisolate", post(unisolate))
        .route("/_simulator/machines/{id}/isolate", post(isolate))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PortalBody {
    requestor: Option<String>,
    comment: Option<String>,
}

impl Shared {
    /// Creates an action of `kind` on the machine as `requestor` did in the portal, whatever
    /// runs on it already; `None` for an unknown machine. An Isolate is `Full`.
    pub(super) fn portal_action(
        &self,
        machine_id: &str,
        kind: ActionType,
        requestor: &str,
        comment: &str,
    ) -> Option<WireAction> {
        let now = self.now();
        let mut state = self.lock();
        let machine = state.machine(machine_id)?.clone();
        let isolate = kind == ActionType::Isolate;
        let mut action = ActionRecord::new(&self.config, &machine, kind, requestor.into(), comment.into(), now);
        action.scope = isolate.then(|| "Full".to_owned());
        action.request_source = PORTAL;
        let wire = self.render(&action, now, true);
        state.actions.push(action);
        Some(wire)
    }
}

async fn unisolate(State(sh): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> Result<Response, Reject> {
    act(&sh, &id, &body, ActionType::Unisolate, "Released from the portal")
}

async fn isolate(State(sh): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> Result<Response, Reject> {
    act(&sh, &id, &body, ActionType::Isolate, "Isolated from the portal")
}

fn act(sh: &Shared, id: &str, body: &[u8], kind: ActionType, default_comment: &str) -> Result<Response, Reject> {
    let body: PortalBody = if body.iter().all(u8::is_ascii_whitespace) {
        PortalBody::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|_| reject(StatusCode::BAD_REQUEST, "InvalidRequestBody", "Request body is incorrect"))?
    };
    let requestor = body.requestor.as_deref().unwrap_or(DEFAULT_REQUESTOR);
    let comment = body.comment.as_deref().unwrap_or(default_comment);
    let action =
        sh.portal_action(id, kind, requestor, comment).ok_or_else(|| not_found("Machine", id, &sh.config.tenant_id))?;
    Ok((StatusCode::CREATED, Json(action)).into_response())
}
