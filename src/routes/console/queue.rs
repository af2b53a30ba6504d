//! The queue (`/ui/`: what waits for a decision, "waiting for me" first) and mine (`/ui/mine`:
//! my requests and my decisions).

use super::html::{esc, page, respond, span};
use super::session::{self, Session, Use};
use super::signed_out;
use crate::clock::Timestamp;
use crate::db::releases::ListFilter;
use crate::domain::Release;
use crate::error::ApiError;
use crate::service::reading as service;
use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::fmt::Write;

/// Rows shown on one page; older ones are reached through the API.
const SHOWN: i64 = 200;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/ui/", get(queue)).route("/ui/mine", get(mine))
}

fn filter(requested_by: Option<String>, awaiting_decision: bool) -> ListFilter {
    ListFilter { status: None, machine_id: None, requested_by, before_seq: None, awaiting_decision, limit: SHOWN }
}

async fn queue(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let result: Result<Response, ApiError> = async {
        let Some(s) = session::current(&state, &headers, Use::Active).await? else {
            return Ok(signed_out("/ui/", false));
        };
        let now = state.clock.now();
        let rows = service::list(&state, &s.principal, filter(None, true)).await?;
        let approver_role = &state.settings.auth.approver_role;
        let (mut mine, others): (Vec<_>, Vec<_>) = rows
            .into_iter()
            .map(|(_, r)| r)
            .partition(|r| service::awaits_decision_by(r, &s.principal, approver_role, now));
        let waiting = mine.len();
        mine.extend(others);
        let intro = match waiting {
            0 => "Nothing waits for you right now.".to_string(),
            1 => "1 release waits for you.".to_string(),
            n => format!("{n} releases wait for you."),
        };
        let body = format!(r#"<p class="lead">{intro}</p>{}"#, table(&mine, waiting, now, "queue", approver_role));
        Ok(respond(StatusCode::OK, page("Queue", Some(&s), &body)))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn mine(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let result: Result<Response, ApiError> = async {
        let Some(s) = session::current(&state, &headers, Use::Active).await? else {
            return Ok(signed_out("/ui/mine", false));
        };
        let now = state.clock.now();
        let approver_role = &state.settings.auth.approver_role;
        let requested: Vec<Release> = service::list(&state, &s.principal, filter(Some(s.principal.id.clone()), false))
            .await?
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        let decided = decided_by(&state, &s).await?;
        let body = format!(
            "<h2>My requests</h2>{}<h2>My decisions</h2>{}",
            table(&requested, 0, now, "my-requests", approver_role),
            table(&decided, 0, now, "my-decisions", approver_role)
        );
        Ok(respond(StatusCode::OK, page("Mine", Some(&s), &body)))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Releases the person approved, ratified or rejected, newest first (readers only).
async fn decided_by(state: &AppState, s: &Session) -> Result<Vec<Release>, ApiError> {
    if service::require_reader(state, &s.principal).is_err() {
        return Ok(Vec::new());
    }
    let rows = service::list(state, &s.principal, filter(None, false)).await?;
    let me = &s.principal.id;
    Ok(rows
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| r.approvals.iter().any(|a| &a.approver == me) || r.decided_by.as_ref() == Some(me))
        .collect())
}

/// The device's name as MDE gave it at request time, if it did.
pub(super) fn device_name(r: &Release) -> Option<&str> {
    r.decided_under.as_ref().and_then(|d| d.device.computer_dns_name.as_deref())
}

/// The table of releases; the first `waiting` rows are those waiting for the person.
fn table(rows: &[Release], waiting: usize, now: Timestamp, id: &str, approver_role: &str) -> String {
    if rows.is_empty() {
        return r#"<p class="empty">None.</p>"#.to_string();
    }
    let mut out = format!(
        r#"<table id="{id}"><thead><tr><th scope="col">Device</th><th scope="col">Rule</th><th scope="col">Slots</th><th scope="col">Status</th><th scope="col">Requester</th><th scope="col">Age</th><th scope="col">Time left</th></tr></thead><tbody>"#
    );
    for (i, r) in rows.iter().enumerate() {
        let slots = crate::decide::quorum_of(r, approver_role).slots().to_vec();
        let (filled, needed) = slots.iter().fold((0, 0), |(f, n), s| (f + s.filled_by.len() as u32, n + s.count));
        let rule = r.decided_under.as_ref().map_or("default", |d| d.rule.name.as_str());
        let deadline = match &r.break_glass {
            Some(bg) if bg.ratified_at.is_none() => Some(bg.ratify_by),
            _ if r.status == crate::domain::ReleaseStatus::Pending => Some(r.expires_at),
            _ => None,
        };
        let left = deadline.map_or("—".to_string(), |d| if d > now { span(d.since(now)) } else { "due".into() });
        let class = if i < waiting { r#" class="waiting-for-me""# } else { "" };
        let mark = if i < waiting { r#" <span class="badge">waiting for me</span>"# } else { "" };
        let _ = write!(
            out,
            r#"<tr data-release-id="{id}"{class}><td><a href="/ui/releases/{id}">{name}</a>{mark}<br><code>{machine}</code></td><td>{rule}</td><td>{filled} / {needed}</td><td><span class="status status-{status}">{status}</span></td><td>{by}</td><td>{age}</td><td>{left}</td></tr>"#,
            id = r.id,
            name = esc(device_name(r).unwrap_or("(name unknown)")),
            machine = r.machine_id,
            rule = esc(rule),
            status = r.status.as_str(),
            by = esc(&r.requested_by),
            age = span(now.since(r.requested_at)),
        );
    }
    out.push_str("</tbody></table>");
    out
}
