//! The web console under `/ui/`: server-rendered pages for the people in the loop (the analyst
//! who asks, the approver, the auditor), signed in with `[oidc]`. Handlers call the same
//! services as the API, as the signed-in principal. Every answer carries a CSP without inline
//! script and `frame-ancestors 'none'`; every state-changing form carries the session's CSRF token.

mod audit;
mod html;
mod login;
mod queue;
mod release;
mod request;
mod session;

use crate::state::AppState;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use session::Session;

const CONSOLE_JS: &str = include_str!("assets/console.js");
const CONSOLE_CSS: &str = include_str!("assets/console.css");

/// Everything under `/ui/`, and `/` redirecting there.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/assets/console.js", get(|| async { asset("text/javascript; charset=utf-8", CONSOLE_JS) }))
        .route("/ui/assets/console.css", get(|| async { asset("text/css; charset=utf-8", CONSOLE_CSS) }))
        .merge(login::router())
        .merge(queue::router())
        .merge(release::router())
        .merge(request::router())
        .merge(audit::router())
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")], body).into_response()
}

/// The console's origin as people reach it: `[console] public_url`, or `http://{bound address}`.
fn base_url(state: &AppState) -> String {
    state.settings.console.base_url(&state.local_addr.to_string())
}

/// Headers on every answer (the console's, redirects and errors included; harmless on the API's). `form-action` names the
/// identity provider too, since the sign-in form and a step-up redirect lead there.
pub(super) async fn security_headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let idp = state.oidc.as_ref().and_then(|o| o.provider_origin()).unwrap_or_default();
    let csp = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
         form-action 'self' {idp}; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    );
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(csp.trim()) {
        h.insert(CONTENT_SECURITY_POLICY, v);
    }
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(CACHE_CONTROL) {
        // Pages show who may release what: never kept by a shared cache or the back button.
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// 303 to a path of this console.
fn see_other(path: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, path.to_string())]).into_response()
}

/// `return_to` when it is a path of this console, else the queue: never another site.
fn safe_return_to(return_to: Option<&str>) -> String {
    match return_to {
        Some(p)
            if p.starts_with("/ui/")
                && !p.contains("//")
                && !p.contains('\\')
                && p.chars().all(|c| c.is_ascii_graphic()) =>
        {
            p.to_string()
        }
        _ => "/ui/".to_string(),
    }
}

/// The form's CSRF token is this session's.
fn csrf_ok(s: &Session, sent: Option<&str>) -> bool {
    sent.is_some_and(|t| session::same_secret(t, &s.csrf))
}

/// 403 for a state-changing request whose CSRF token is missing or another session's.
fn csrf_refused(s: Option<&Session>) -> Response {
    let html = html::error_page(
        s,
        "Refused",
        "This form did not come from your current console session, so nothing was changed. Reload the page and try again.",
        "csrf_token_invalid",
    );
    html::respond(StatusCode::FORBIDDEN, html)
}

/// The page a request without a session gets: for a GET, the sign-in page coming back here;
/// for a POST, 403 (nothing can be checked, nothing is changed).
fn signed_out(return_to: &str, post: bool) -> Response {
    if post {
        let html = html::error_page(
            None,
            "Signed out",
            "Your console session has ended, so nothing was changed. Sign in again.",
            "session_required",
        );
        return html::respond(StatusCode::FORBIDDEN, html);
    }
    html::respond(StatusCode::OK, html::sign_in_page(&safe_return_to(Some(return_to)), None))
}

#[cfg(test)]
mod tests {
    use super::safe_return_to;

    #[test]
    fn return_to_is_only_ever_a_console_path() {
        for (given, kept) in [
            (Some("/ui/releases/abc"), "/ui/releases/abc"),
            (Some("/ui/mine?x=1"), "/ui/mine?x=1"),
            (Some("https://evil.example/ui/"), "/ui/"),
            (Some("//evil.example/ui/"), "/ui/"),
            (Some("/ui//evil.example"), "/ui/"),
            (Some("/ui/\\evil"), "/ui/"),
            (Some("/api/v1/releases"), "/ui/"),
            (Some("/ui/a b"), "/ui/"),
            (None, "/ui/"),
        ] {
            assert_eq!(safe_return_to(given), kept, "{given:?}");
        }
    }
}
