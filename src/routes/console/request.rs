//! The request form (`/ui/request`): ask for a release, or use break-glass with its warning.

use super::html::{csrf_input, esc, page, respond};
use super::session::{self, Session, Use};
use super::{csrf_ok, csrf_refused, see_other, signed_out};
use crate::error::ApiError;
use crate::service::request::request;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/ui/request", get(show).post(submit))
}

/// What the person typed, shown again when the request is refused.
#[derive(Deserialize, Default)]
struct RequestForm {
    csrf: Option<String>,
    #[serde(default)]
    machine_id: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    ticket: String,
    /// A checkbox: present (`on`) when ticked.
    break_glass: Option<String>,
}

async fn show(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let result: Result<Response, ApiError> = async {
        let Some(s) = session::current(&state, &headers, Use::Active).await? else {
            return Ok(signed_out("/ui/request", false));
        };
        Ok(form(&state, &s, &RequestForm::default(), None))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

fn form(state: &AppState, s: &Session, f: &RequestForm, refusal: Option<&ApiError>) -> Response {
    let policy = state.policy();
    let error = refusal
        .map(|e| {
            format!(r#"<p role="alert" class="error">{} <span class="code">({})</span></p>"#, esc(&e.message), e.code)
        })
        .unwrap_or_default();
    let glass = match policy.break_glass() {
        Some(bg) if s.principal.has_role(&bg.role) => format!(
            r#"<fieldset class="break-glass"><legend>Break-glass</legend><p class="warning">Break-glass releases the device at once, without a second person. A second person must ratify it within {within}, or dualkey isolates the device again. Use it only when waiting would cause more harm; the comment needs at least {min} characters.</p><input type="checkbox" id="break_glass" name="break_glass"{checked}><label for="break_glass">Break-glass: release now, ratify later</label></fieldset>"#,
            within = super::html::span(bg.ratify_within),
            min = bg.min_comment_len,
            checked = if f.break_glass.is_some() { " checked" } else { "" },
        ),
        _ => String::new(),
    };
    let body = format!(
        r#"{error}<form method="post" action="/ui/request" class="request">{csrf}
<label for="machine_id">Machine ID</label><input id="machine_id" name="machine_id" required pattern="[0-9a-fA-F]{{40}}" autocomplete="off" value="{machine}" aria-describedby="machine-help"><p id="machine-help" class="help">The device id in Defender for Endpoint: 40 hexadecimal characters.</p>
<label for="comment">Comment</label><textarea id="comment" name="comment" rows="3" required aria-describedby="comment-help">{comment}</textarea><p id="comment-help" class="help">Why the device can go back on the network: at least {min} characters.</p>
<label for="ticket">Ticket</label><input id="ticket" name="ticket" value="{ticket}" autocomplete="off">
{glass}<button type="submit" class="primary">Request release</button></form>"#,
        csrf = csrf_input(s),
        machine = esc(&f.machine_id),
        comment = esc(&f.comment),
        ticket = esc(&f.ticket),
        min = policy.min_comment_len(),
    );
    let status = refusal.map_or(StatusCode::OK, |e| e.status);
    respond(status, page("Request release", Some(s), &body))
}

async fn submit(State(state): State<AppState>, headers: HeaderMap, Form(f): Form<RequestForm>) -> Response {
    let result: Result<Response, ApiError> = async {
        let Some(s) = session::current(&state, &headers, Use::Active).await? else {
            return Ok(signed_out("/ui/request", true));
        };
        if !csrf_ok(&s, f.csrf.as_deref()) {
            return Ok(csrf_refused(Some(&s)));
        }
        let policy = state.policy();
        let ticket = Some(f.ticket.trim()).filter(|t| !t.is_empty());
        let outcome = match crate::routes::releases::new_request(
            &policy,
            f.machine_id.trim(),
            &f.comment,
            ticket,
            f.break_glass.is_some(),
        ) {
            Ok(req) => request(&state, &policy, &s.principal, req).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(r) => Ok(see_other(&format!("/ui/releases/{}", r.id))),
            Err(e) if e.status.is_client_error() => Ok(form(&state, &s, &f, Some(&e))),
            Err(e) => Err(e),
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
