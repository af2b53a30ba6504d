//! Signing in and out: `/ui/login` sends the browser to the identity provider, `/ui/callback`
//! takes it back (state bound to this browser by the `dualkey_login` cookie, the code exchanged
//! with the PKCE verifier, the ID token verified), `/ui/logout` ends the session server-side.

use super::html::{error_page, respond, sign_in_page};
use super::session::{self, Cookies, Use, hash, random_token};
use super::{base_url, safe_return_to, see_other};
use crate::audit::{self, Actor, AuditEvent, Subject};
use crate::auth::SignIn;
use crate::auth::oidc::{AuthorizationRequest, OidcError};
use crate::clock::Timestamp;
use crate::db::sessions::{self as db, LoginRow, SessionRow};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// A sign-in must come back from the provider within this long.
const LOGIN_TTL: Duration = Duration::from_secs(600);

/// Sign-ins under way at once (each is a row anyone can make without an account): past this,
/// new ones wait until older ones come back or are swept.
const MAX_LOGINS_UNDER_WAY: i64 = 10_000;

pub(super) fn router() -> Router<AppState> {
    use axum::routing::{get, post};
    Router::new().route("/ui/login", get(login)).route("/ui/callback", get(callback)).route("/ui/logout", post(logout))
}

#[derive(Deserialize)]
struct LoginQuery {
    return_to: Option<String>,
    /// 1: a step-up before a decision (`prompt=login`, `max_age`).
    reauth: Option<u8>,
}

async fn login(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    match start(&state, &headers, q).await {
        Ok(r) => r,
        Err(e) => unavailable(e),
    }
}

async fn start(state: &AppState, headers: &HeaderMap, q: LoginQuery) -> Result<Response, OidcError> {
    let oidc = state.oidc.as_ref().ok_or_else(|| OidcError::Unavailable("[oidc] is not configured".into()))?;
    let provider = oidc.provider().await?;
    let cookies = Cookies::for_base(&base_url(state));
    // One binding per browser, reused by sign-ins started in several tabs.
    let binding = session::cookie(headers, cookies.login_name()).map(str::to_string).unwrap_or_else(random_token);
    let (state_token, nonce, verifier) = (random_token(), random_token(), random_token());
    let reauth = q.reauth == Some(1);
    let row = LoginRow {
        state_hash: hash(&state_token),
        binding_hash: hash(&binding),
        nonce: nonce.clone(),
        verifier: verifier.clone(),
        return_to: safe_return_to(q.return_to.as_deref()),
        reauth: i64::from(reauth),
        created_at: state.clock.now(),
    };
    let reauth_for = reauth.then(|| state.settings.console.reauth_for_decision.get());
    let url = oidc.authorization_url(
        &provider,
        &AuthorizationRequest { state: &state_token, nonce: &nonce, verifier: &verifier, reauth: reauth_for },
    )?;
    let stored: Result<bool, sqlx::Error> = async {
        let mut tx = state.db.begin().await?;
        db::sweep(&mut tx, state.clock.now().minus(LOGIN_TTL)).await?;
        if db::logins_under_way(&mut tx).await? >= MAX_LOGINS_UNDER_WAY {
            return Ok(false);
        }
        db::start_login(&mut tx, row).await?;
        tx.commit().await.map(|()| true)
    }
    .await;
    match stored {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(limit = MAX_LOGINS_UNDER_WAY, "too many console sign-ins under way; refusing new ones");
            let html = error_page(
                None,
                "Busy",
                "Too many sign-ins are under way. Try again in a few minutes.",
                "too_many_sign_ins",
            );
            return Ok(respond(StatusCode::SERVICE_UNAVAILABLE, html));
        }
        Err(e) => return Ok(ApiError::from(e).into_response()),
    }
    let cookie = cookies.set(cookies.login_name(), &binding, LOGIN_TTL);
    Ok((StatusCode::FOUND, [(LOCATION, url), (SET_COOKIE, cookie)]).into_response())
}

fn unavailable(e: OidcError) -> Response {
    tracing::warn!(error = %e, "console sign-in could not start");
    let html = error_page(
        None,
        "Sign-in unavailable",
        "dualkey cannot reach the identity provider right now. Try again in a moment.",
        "identity_provider_unavailable",
    );
    respond(StatusCode::SERVICE_UNAVAILABLE, html)
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<CallbackQuery>) -> Response {
    match finish(&state, &headers, q).await {
        Ok(r) => r,
        Err(Refusal::Api(e)) => e.into_response(),
        Err(Refusal::Oidc(OidcError::Unavailable(why))) => unavailable(OidcError::Unavailable(why)),
        Err(Refusal::Oidc(OidcError::Refused(why))) => {
            crate::routes::extract::log_refusal_reason(&state, &format!("console sign-in refused: {why}"));
            let html = sign_in_page(
                "/ui/",
                Some("Sign-in failed: dualkey could not verify the answer of the identity provider. Sign in again."),
            );
            respond(StatusCode::BAD_REQUEST, html)
        }
        Err(Refusal::State) => {
            let html = sign_in_page(
                "/ui/",
                Some(
                    "This sign-in was not started in this browser, was already used, or took too long. Sign in again.",
                ),
            );
            respond(StatusCode::BAD_REQUEST, html)
        }
    }
}

enum Refusal {
    Api(ApiError),
    Oidc(OidcError),
    /// Unknown, reused, expired or another browser's `state`.
    State,
}

impl From<sqlx::Error> for Refusal {
    fn from(e: sqlx::Error) -> Self {
        Self::Api(e.into())
    }
}

impl From<OidcError> for Refusal {
    fn from(e: OidcError) -> Self {
        Self::Oidc(e)
    }
}

async fn finish(state: &AppState, headers: &HeaderMap, q: CallbackQuery) -> Result<Response, Refusal> {
    let oidc = state.oidc.as_ref().ok_or(Refusal::State)?;
    let cookies = Cookies::for_base(&base_url(state));
    let now = state.clock.now();
    // The state is taken (deleted) whatever follows: it works once.
    let login = {
        let Some(state_token) = q.state.as_deref() else { return Err(Refusal::State) };
        let mut tx = state.db.begin().await?;
        let login = db::take_login(&mut tx, &hash(state_token)).await?;
        tx.commit().await?;
        login.ok_or(Refusal::State)?
    };
    let binding = session::cookie(headers, cookies.login_name()).ok_or(Refusal::State)?;
    if !session::same_secret(&hash(binding), &login.binding_hash) || now >= login.created_at.plus(LOGIN_TTL) {
        return Err(Refusal::State);
    }
    if let Some(error) = q.error {
        let why = format!("the identity provider answered {error}: {}", q.error_description.unwrap_or_default());
        return Err(OidcError::Refused(why).into());
    }
    let code = q.code.ok_or_else(|| OidcError::Refused("no code in the callback".into()))?;
    let provider = oidc.provider().await?;
    let id_token = oidc.exchange(&provider, &code, &login.verifier).await?;
    let (claims, principal) = oidc.verify_id_token(&provider, &state.verifier, &id_token, &login.nonce).await?;
    let auth_time = claims.get("auth_time").and_then(Value::as_i64).map(|s| Timestamp::from_unix_ms(s * 1000));
    if login.reauth == 1 {
        // A step-up must be a fresh authentication, not a remembered one. Without `auth_time`
        // (Entra ID sends it only as an optional claim) the sign-in time stands for it.
        let fresh = now.since(auth_time.unwrap_or(now)) <= state.settings.console.reauth_for_decision.get();
        if !fresh {
            return Err(OidcError::Refused("the step-up sign-in's auth_time is not recent".into()).into());
        }
    }
    let amr = claims
        .get("amr")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect::<Vec<_>>());
    let sign_in = SignIn { signed_in_at: now, auth_time: auth_time.unwrap_or(now), amr };
    let id = random_token();
    let row = SessionRow {
        id_hash: hash(&id),
        principal: principal.id.clone(),
        upn: principal.upn.clone(),
        name: claims.get("name").and_then(Value::as_str).map(String::from),
        roles: db::json_list(&principal.roles_vec())?,
        csrf_token: random_token(),
        signed_in_at: now,
        auth_time: sign_in.auth_time,
        amr: sign_in.amr.as_deref().map(db::json_list).transpose()?,
        last_seen_at: now,
        expires_at: now.plus(state.settings.console.session_max.get()),
        ended_at: None,
    };
    let mut tx = state.db.begin().await?;
    // A new sign-in in this browser replaces the session it had (a step-up, another person).
    if let Some(old) = session::cookie(headers, cookies.session_name()) {
        db::end(&mut tx, &hash(old), now).await?;
    }
    db::create(&mut tx, row).await?;
    let none = Subject { release_id: None, machine_id: None };
    audit::record(&mut tx, now, Actor::Principal(&principal.id), none, &AuditEvent::ConsoleSignedIn { sign_in })
        .await?;
    tx.commit().await?;
    tracing::info!(principal = %crate::logsafe::untrusted(&principal.id), "console sign-in");
    let max = state.settings.console.session_max.get();
    let mut response = see_other(&login.return_to);
    let h = response.headers_mut();
    for cookie in [cookies.set(cookies.session_name(), &id, max), cookies.clear(cookies.login_name())] {
        h.append(SET_COOKIE, cookie.parse().expect("a cookie of base64url and fixed attributes is a header value"));
    }
    Ok(response)
}

#[derive(Deserialize)]
struct LogoutForm {
    csrf: Option<String>,
}

async fn logout(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<LogoutForm>) -> Response {
    let cookies = Cookies::for_base(&base_url(&state));
    let result: Result<Response, ApiError> = async {
        let Some(s) = session::current(&state, &headers, Use::Active).await? else {
            return Ok(see_other("/ui/"));
        };
        if !super::csrf_ok(&s, form.csrf.as_deref()) {
            return Ok(super::csrf_refused(Some(&s)));
        }
        let now = state.clock.now();
        let mut tx = state.db.begin().await?;
        if db::end(&mut tx, &s.id_hash, now).await? {
            let none = Subject { release_id: None, machine_id: None };
            let event = AuditEvent::ConsoleSignedOut { signed_in_at: s.signed_in_at };
            audit::record(&mut tx, now, Actor::Principal(&s.principal.id), none, &event).await?;
        }
        tx.commit().await?;
        let mut response = respond(StatusCode::OK, sign_in_page("/ui/", Some("You are signed out.")));
        let cookie = cookies.clear(cookies.session_name());
        response.headers_mut().append(SET_COOKIE, cookie.parse().expect("a fixed cookie is a header value"));
        Ok(response)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
