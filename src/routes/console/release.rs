//! One release (`/ui/releases/{id}`): the device as MDE described it, the rule and its slots,
//! the request, the timeline from the audit trail, the MDE action's live status, and the
//! decisions the signed-in person may make. Approving and rejecting need a recent sign-in.

use super::html::{csrf_input, error_page, esc, page, respond, time};
use super::session::{self, Session, Use};
use super::{csrf_ok, csrf_refused, see_other, signed_out};
use crate::decide;
use crate::domain::{Comment, Release, ReleaseId};
use crate::error::ApiError;
use crate::service::reading;
use crate::service::releases as service;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::fmt::Write;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/releases/{id}", get(show))
        .route("/ui/releases/{id}/status", get(status))
        .route("/ui/releases/{id}/approve", post(approve))
        .route("/ui/releases/{id}/reject", post(reject))
        .route("/ui/releases/{id}/cancel", post(cancel))
}

type DecisionRequest = (State<AppState>, HeaderMap, Path<String>, Form<DecisionForm>);

async fn approve(s: State<AppState>, h: HeaderMap, p: Path<String>, f: Form<DecisionForm>) -> Response {
    decide((s, h, p, f), Decision::Approve).await
}

async fn reject(s: State<AppState>, h: HeaderMap, p: Path<String>, f: Form<DecisionForm>) -> Response {
    decide((s, h, p, f), Decision::Reject).await
}

async fn cancel(s: State<AppState>, h: HeaderMap, p: Path<String>, f: Form<DecisionForm>) -> Response {
    decide((s, h, p, f), Decision::Cancel).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Decision {
    Approve,
    Reject,
    Cancel,
}

fn parse_id(raw: &str) -> Result<ReleaseId, ApiError> {
    ReleaseId::parse(raw).map_err(|e| ApiError::not_found(e.code, e.message))
}

async fn show(State(state): State<AppState>, headers: HeaderMap, Path(raw): Path<String>) -> Response {
    let result: Result<Response, ApiError> = async {
        let path = format!("/ui/releases/{raw}");
        let Some(s) = session::current(&state, &headers, Use::Active).await? else {
            return Ok(signed_out(&path, false));
        };
        render(&state, &s, &raw, None).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The release page, with `refusal` (why a decision was refused) above the forms.
async fn render(state: &AppState, s: &Session, raw: &str, refusal: Option<&ApiError>) -> Result<Response, ApiError> {
    let r = match parse_id(raw) {
        Ok(id) => reading::get(state, &s.principal, id).await,
        Err(e) => Err(e),
    };
    let r = match r {
        Ok(r) => r,
        Err(e) if e.status.is_client_error() => {
            let html = error_page(Some(s), "Release", &e.message, e.code);
            return Ok(respond(e.status, html));
        }
        Err(e) => return Err(e),
    };
    let timeline = {
        let mut conn = state.db.reader().await?;
        crate::db::audit::list(&mut conn, 0, 500, Some(&r.id.to_string())).await?
    };
    let status = refusal.map_or(StatusCode::OK, |e| e.status);
    let title = super::queue::device_name(&r).unwrap_or("Release").to_string();
    let body = body(state, s, &r, refusal, &timeline);
    Ok(respond(status, page(&title, Some(s), &body)))
}

fn body(
    state: &AppState,
    s: &Session,
    r: &Release,
    refusal: Option<&ApiError>,
    timeline: &[crate::audit::AuditEntry],
) -> String {
    let d = r.decided_under.as_ref();
    let device = d.map(|d| &d.device);
    let opt = |v: Option<&str>| esc(v.unwrap_or("—"));
    let tags = device.map(|d| d.machine_tags.join(", ")).filter(|t| !t.is_empty());
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<section class="facts" data-release-id="{id}"><dl>
<dt>Status</dt><dd id="status" data-status="{st}">{st}</dd>
<dt>MDE action</dt><dd><span id="mde-action-status">{mde_status}</span> <code id="mde-action-id">{mde_id}</code></dd>
<dt>Machine ID</dt><dd><code>{machine}</code></dd>
<dt>Device group</dt><dd>{group}</dd><dt>Tags</dt><dd>{tags}</dd><dt>Risk</dt><dd>{risk}</dd><dt>Health</dt><dd>{health}</dd>
<dt>Isolated by</dt><dd>{isolated_by}</dd>
<dt>Requested by</dt><dd>{by} at {at}</dd><dt>Comment</dt><dd class="comment">{comment}</dd><dt>Ticket</dt><dd>{ticket}</dd>
<dt>Expires</dt><dd>{expires}</dd>{last_error}
</dl></section>"#,
        id = r.id,
        st = r.status.as_str(),
        mde_status = opt(r.mde_action_status.as_deref()),
        mde_id = opt(r.mde_action_id.as_deref()),
        machine = r.machine_id,
        group = opt(device.and_then(|d| d.rbac_group_name.as_deref())),
        tags = opt(tags.as_deref()),
        risk = opt(device.and_then(|d| d.risk_score.as_deref())),
        health = opt(device.and_then(|d| d.health_status.as_deref())),
        isolated_by = opt(d.and_then(|d| d.isolated_by.as_deref())),
        by = esc(&r.requested_by),
        at = time(r.requested_at),
        comment = esc(&r.comment),
        ticket = opt(r.ticket.as_deref()),
        expires = time(r.expires_at),
        last_error =
            r.last_error.as_deref().map(|e| format!("<dt>Last error</dt><dd>{}</dd>", esc(e))).unwrap_or_default(),
    );
    if let Some(bg) = &r.break_glass {
        let ratified = match (&bg.ratified_by, bg.ratified_at) {
            (Some(by), Some(at)) => format!("ratified by {} at {}", esc(by), time(at)),
            _ => format!("not ratified yet: due by {}", time(bg.ratify_by)),
        };
        let _ = write!(out, r#"<p class="warning">Break-glass release: sent at once, {ratified}.</p>"#);
    }
    let approver_role = &state.settings.auth.approver_role;
    let rule = d.map_or("default", |d| d.rule.name.as_str());
    let _ = write!(
        out,
        r#"<h2>Rule <code>{}</code></h2><table id="slots"><thead><tr><th scope="col">Role</th><th scope="col">Needed</th><th scope="col">Filled by</th></tr></thead><tbody>"#,
        esc(rule)
    );
    for slot in decide::quorum_of(r, approver_role).slots() {
        let who = if slot.filled_by.is_empty() { "—".to_string() } else { esc(&slot.filled_by.join(", ")) };
        let _ = write!(out, "<tr><td>{}</td><td>{}</td><td>{who}</td></tr>", esc(&slot.role), slot.count);
    }
    out.push_str("</tbody></table>");
    out.push_str(&forms(state, s, r, refusal));
    out.push_str(r#"<h2>Timeline</h2><ol class="timeline" id="timeline">"#);
    for e in timeline {
        let _ = write!(
            out,
            "<li>{} <strong>{}</strong> by {}</li>",
            time(e.at),
            esc(&e.action.replace('_', " ")),
            esc(&e.actor)
        );
    }
    out.push_str("</ol>");
    out
}

/// The decisions this person may make now, and why the last one was refused.
fn forms(state: &AppState, s: &Session, r: &Release, refusal: Option<&ApiError>) -> String {
    let mut out = String::new();
    if let Some(e) = refusal {
        let _ = write!(
            out,
            r#"<p role="alert" class="error">{} <span class="code">({})</span></p>"#,
            esc(&e.message),
            e.code
        );
    }
    let now = state.clock.now();
    let p = &s.principal;
    let approver_role = &state.settings.auth.approver_role;
    let caller = crate::service::releases::caller(p);
    let csrf = csrf_input(s);
    let id = r.id;
    if reading::awaits_decision_by(r, p, approver_role, now) {
        let verb = if r.break_glass.is_some() { "Ratify this break-glass release" } else { "Approve this release" };
        let _ = write!(
            out,
            r#"<form method="post" action="/ui/releases/{id}/approve" class="decision">{csrf}<h2>{verb}</h2><label for="approve-comment">Comment</label><textarea id="approve-comment" name="comment" rows="2"></textarea><button type="submit" class="primary">Approve</button></form>"#
        );
    }
    if decide::rejection(r, caller, approver_role, now).is_ok() {
        let _ = write!(
            out,
            r#"<form method="post" action="/ui/releases/{id}/reject" class="decision">{csrf}<h2>Reject this release</h2><label for="reject-comment">Comment</label><textarea id="reject-comment" name="comment" rows="2" required></textarea><button type="submit" class="danger">Reject</button></form>"#
        );
    }
    if decide::cancellation(r, &p.id, now).is_ok() {
        let _ = write!(
            out,
            r#"<form method="post" action="/ui/releases/{id}/cancel" class="decision">{csrf}<button type="submit">Cancel release</button></form>"#
        );
    }
    out
}

/// The live status, for the page's script. Reading it does not keep the session alive.
async fn status(State(state): State<AppState>, headers: HeaderMap, Path(raw): Path<String>) -> Response {
    let result: Result<Response, ApiError> = async {
        let Some(s) = session::current(&state, &headers, Use::Passive).await? else {
            return Err(ApiError::unauthorized("session_required", "sign in to the console again"));
        };
        let r = reading::get(&state, &s.principal, parse_id(&raw)?).await?;
        let body = json!({"status": r.status.as_str(), "mde_action_status": r.mde_action_status, "mde_action_id": r.mde_action_id});
        Ok(Json(body).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Deserialize)]
struct DecisionForm {
    csrf: Option<String>,
    comment: Option<String>,
}

async fn decide((State(state), headers, Path(raw), Form(form)): DecisionRequest, decision: Decision) -> Response {
    let result: Result<Response, ApiError> = async {
        let Some(s) = session::current(&state, &headers, Use::Active).await? else {
            return Ok(signed_out("/ui/", true));
        };
        if !csrf_ok(&s, form.csrf.as_deref()) {
            return Ok(csrf_refused(Some(&s)));
        }
        let id = match parse_id(&raw) {
            Ok(id) => id,
            Err(e) => return Ok(respond(e.status, error_page(Some(&s), "Release", &e.message, e.code))),
        };
        let now = state.clock.now();
        let reauth = state.settings.console.reauth_for_decision.get();
        if decision != Decision::Cancel && now.since(s.auth_time) > reauth {
            // Nothing is recorded; the person signs in again and decides again on the same page.
            return Ok(see_other(&format!("/ui/login?return_to=/ui/releases/{id}&reauth=1")));
        }
        let comment = form.comment.as_deref().map(str::trim).filter(|c| !c.is_empty());
        let outcome = match decision {
            Decision::Approve => match comment.map(|c| Comment::parse(c, 1)).transpose() {
                Ok(c) => service::approve(&state, &s.principal, id, c).await,
                Err(e) => Err(e.into()),
            },
            Decision::Reject => match comment {
                None => Err(ApiError::unprocessable("comment_required", "a rejection needs a comment saying why")),
                Some(c) => match Comment::parse(c, state.policy().min_comment_len() as usize) {
                    Ok(c) => service::reject(&state, &s.principal, id, c).await,
                    Err(e) => Err(e.into()),
                },
            },
            Decision::Cancel => service::cancel(&state, &s.principal, id).await,
        };
        match outcome {
            Ok(_) => Ok(see_other(&format!("/ui/releases/{id}"))),
            Err(e) if e.status.is_client_error() => render(&state, &s, &raw, Some(&e)).await,
            Err(e) => Err(e),
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
