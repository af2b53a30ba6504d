//! The audit page (`/ui/audit`, auditors): the trail with filters, and the result of verifying
//! the hash chain now.

use super::html::{error_page, esc, page, respond, time};
use super::session::{self, Use};
use super::signed_out;
use crate::audit::VerifyReport;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use std::fmt::Write;

const PAGE: i64 = 200;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/ui/audit", get(show))
}

#[derive(Deserialize, Default)]
struct Filters {
    after_seq: Option<i64>,
    release_id: Option<String>,
    action: Option<String>,
    actor: Option<String>,
}

fn blank_is_none(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

async fn show(State(state): State<AppState>, headers: HeaderMap, Query(f): Query<Filters>) -> Response {
    let result: Result<Response, ApiError> = async {
        let Some(s) = session::current(&state, &headers, Use::Active).await? else {
            return Ok(signed_out("/ui/audit", false));
        };
        let role = &state.settings.auth.auditor_role;
        if !s.principal.has_role(role) {
            let e = ApiError::missing_role(role);
            return Ok(respond(StatusCode::FORBIDDEN, error_page(Some(&s), "Audit", &e.message, e.code)));
        }
        let release_id = match blank_is_none(&f.release_id).map(crate::domain::ReleaseId::parse).transpose() {
            Ok(id) => id.map(|id| id.to_string()),
            Err(e) => return Ok(respond(StatusCode::BAD_REQUEST, error_page(Some(&s), "Audit", &e.message, e.code))),
        };
        let after = f.after_seq.unwrap_or(0).max(0);
        let (entries, report) = {
            let mut conn = state.db.reader().await?;
            let entries = crate::db::audit::list(&mut conn, after, PAGE, release_id.as_deref()).await?;
            drop(conn);
            (entries, crate::audit::verify_db(&state.db).await?)
        };
        let next = (entries.len() as i64 == PAGE).then(|| entries.last().map(|e| e.seq)).flatten();
        let (action, actor) = (blank_is_none(&f.action), blank_is_none(&f.actor));
        let shown = entries.iter().filter(|e| action.is_none_or(|a| e.action == a) && actor.is_none_or(|a| e.actor == a));
        let verdict = match &report {
            VerifyReport::Intact { entries, head, .. } => {
                format!(r#"<p class="ok" id="verify">Chain intact: {entries} entries, head <code>{}</code>.</p>"#, esc(head))
            }
            VerifyReport::Broken { first_bad_seq, message, .. } => format!(
                r#"<p role="alert" class="error" id="verify">Chain BROKEN at entry {first_bad_seq}: {}</p>"#,
                esc(message)
            ),
        };
        let mut body = format!(
            r#"{verdict}<form method="get" action="/ui/audit" class="filters"><label for="f-release">Release ID</label><input id="f-release" name="release_id" value="{rid}"><label for="f-action">Action</label><input id="f-action" name="action" value="{act}"><label for="f-actor">Actor</label><input id="f-actor" name="actor" value="{who}"><button type="submit">Filter</button></form><table id="audit"><thead><tr><th scope="col">Seq</th><th scope="col">At</th><th scope="col">Actor</th><th scope="col">Action</th><th scope="col">Release</th><th scope="col">Details</th></tr></thead><tbody>"#,
            rid = esc(blank_is_none(&f.release_id).unwrap_or("")),
            act = esc(action.unwrap_or("")),
            who = esc(actor.unwrap_or("")),
        );
        for e in shown {
            let release = e.release_id.as_deref().map_or(String::new(), |id| format!(r#"<a href="/ui/releases/{0}">{0}</a>"#, esc(id)));
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{release}</td><td><code>{}</code></td></tr>",
                e.seq,
                time(e.at),
                esc(&e.actor),
                esc(&e.action),
                esc(&e.details)
            );
        }
        body.push_str("</tbody></table>");
        if let Some(seq) = next {
            let mut url = reqwest::Url::parse("http://console/ui/audit").expect("a fixed URL parses");
            url.query_pairs_mut().append_pair("after_seq", &seq.to_string());
            for (k, v) in [("release_id", blank_is_none(&f.release_id)), ("action", action), ("actor", actor)] {
                if let Some(v) = v {
                    url.query_pairs_mut().append_pair(k, v);
                }
            }
            let href = format!("/ui/audit?{}", url.query().unwrap_or_default());
            let _ = write!(body, r#"<p><a href="{}">Next page</a></p>"#, esc(&href));
        }
        Ok(respond(StatusCode::OK, page("Audit", Some(&s), &body)))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
