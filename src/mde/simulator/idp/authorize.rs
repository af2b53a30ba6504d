//! The authorization endpoint: a page with one button per dev user; pressing one redirects to
//! the app with a code bound to its client, redirect URI and PKCE challenge. A request that
//! names no known client or an unregistered redirect URI gets a page and never a redirect, so
//! this cannot be used to send people elsewhere (RFC 6749 §4.1.2.1).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use reqwest::Url;

use super::config::DevIdpConfig;
use super::html::{self, escape};
use super::random_token;
use super::scope::Scope;
use super::state::{AuthCode, SignIn};
use crate::mde::simulator::state::Shared;

/// How long a code can be redeemed.
const AUTH_CODE_TTL: Duration = Duration::from_secs(600);

/// The request parameters a sign-in page carries back as hidden inputs, in this order.
const PARAMS: [&str; 11] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "response_mode",
];

type Params = HashMap<String, String>;

/// A sign-in request that passed every check.
struct AuthorizeRequest {
    client_id: String,
    redirect_uri: String,
    scope: Scope,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: String,
}

/// Why a sign-in request was refused, and where the refusal goes.
enum Refused {
    /// Shown to the person: the app or its redirect URI cannot be trusted with an answer.
    Page(String),
    /// Sent back to the app's (verified) redirect URI as `error`, `error_description`, `state`.
    Redirect { redirect_uri: String, state: Option<String>, error: &'static str, description: String },
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Self::Page(message) => html::refusal("Sign-in refused", &message),
            Self::Redirect { redirect_uri, state, error, description } => {
                let mut pairs = vec![("error", error), ("error_description", description.as_str())];
                pairs.extend(state.as_deref().map(|s| ("state", s)));
                match with_query(&redirect_uri, pairs) {
                    Some(location) => found(&location),
                    None => html::refusal("Sign-in refused", "The redirect URI cannot be read."),
                }
            }
        }
    }
}

/// Whether `uri` may receive codes: an `http` loopback URI on any port (RFC 8252 §7.3; this
/// is a development provider), or one of `config.redirect_uris` exactly. No user info and no
/// fragment (RFC 6749 §3.1.2).
pub(crate) fn redirect_allowed(config: &DevIdpConfig, uri: &str) -> bool {
    if config.redirect_uris.iter().any(|allowed| allowed == uri) {
        return true;
    }
    let Ok(url) = Url::parse(uri) else { return false };
    // The parsed host is normalised (`127.1` reads as `127.0.0.1`, `[0::1]` as `[::1]`).
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    url.scheme() == "http" && loopback && url.username().is_empty() && url.password().is_none() && !uri.contains('#')
}

/// `base` with `pairs` appended to its query, form-encoded; `None` if `base` is no URL.
pub(crate) fn with_query<'a>(base: &str, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<String> {
    let mut url = Url::parse(base).ok()?;
    url.query_pairs_mut().extend_pairs(pairs);
    Some(url.into())
}

/// A 302 to `location`, the redirect OAuth clients expect from an authorization endpoint.
pub(crate) fn found(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::FOUND, [(header::LOCATION, value)]).into_response(),
        Err(_) => html::refusal("Sign-in refused", "The redirect URI cannot be used."),
    }
}

fn parse(sh: &Shared, tenant: &str, params: &Params) -> Result<AuthorizeRequest, Refused> {
    let config = &sh.config.idp;
    let get = |name: &str| params.get(name).map(String::as_str).filter(|v| !v.is_empty());
    if tenant != sh.config.tenant_id {
        return Err(Refused::Page(format!("Tenant '{tenant}' is not served here.")));
    }
    let client_id = get("client_id").unwrap_or("");
    if client_id != config.client_id {
        return Err(Refused::Page(format!("No application with client id '{client_id}' is registered.")));
    }
    let Some(redirect_uri) = get("redirect_uri").filter(|uri| redirect_allowed(config, uri)) else {
        let given = get("redirect_uri").unwrap_or("(none)");
        return Err(Refused::Page(format!("The redirect URI '{given}' is not registered for this application.")));
    };
    let state = get("state").map(str::to_owned);
    let refuse = |error: &'static str, description: &str| Refused::Redirect {
        redirect_uri: redirect_uri.to_owned(),
        state: state.clone(),
        error,
        description: description.to_owned(),
    };
    match get("response_type") {
        Some("code") => {}
        Some(_) => return Err(refuse("unsupported_response_type", "Only response_type=code is supported.")),
        None => return Err(refuse("invalid_request", "The request must contain response_type=code.")),
    }
    if get("response_mode").is_some_and(|m| m != "query") {
        return Err(refuse("invalid_request", "Only response_mode=query is supported."));
    }
    if get("code_challenge_method") != Some("S256") {
        return Err(refuse("invalid_request", "PKCE is required with code_challenge_method=S256."));
    }
    let code_challenge = get("code_challenge").unwrap_or("");
    if !is_s256_challenge(code_challenge) {
        return Err(refuse("invalid_request", "code_challenge must be 43 base64url characters (S256)."));
    }
    let scope = Scope::parse(get("scope"), config).map_err(|r| refuse(r.error, &r.description))?;
    match get("prompt") {
        None | Some("login" | "select_account" | "consent") => {}
        Some("none") => return Err(refuse("login_required", "There is no session here: the user must sign in.")),
        Some(_) => return Err(refuse("invalid_request", "prompt must be login, select_account, consent or none.")),
    }
    if get("max_age").is_some_and(|age| age.parse::<u64>().is_err()) {
        return Err(refuse("invalid_request", "max_age must be a whole number of seconds."));
    }
    Ok(AuthorizeRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        scope,
        state,
        nonce: get("nonce").map(str::to_owned),
        code_challenge: code_challenge.to_owned(),
    })
}

/// An S256 challenge is a SHA-256 digest in unpadded base64url: exactly 43 such characters.
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43 && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `GET /{tenant}/oauth2/v2.0/authorize`: the sign-in page.
pub(crate) async fn show(
    State(sh): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    query: Result<Query<Params>, QueryRejection>,
) -> Response {
    let Ok(Query(params)) = query else {
        return Refused::Page("The query string cannot be read.".into()).into_response();
    };
    let request = match parse(&sh, &tenant, &params) {
        Ok(request) => request,
        Err(refused) => return refused.into_response(),
    };
    let hidden =
        html::hidden_inputs(PARAMS.iter().filter_map(|name| params.get(*name).map(|value| (*name, value.as_str()))));
    let body = format!(
        "<p>Choose who to sign in as. The application <strong>{client}</strong> receives the answer at \
<span class=\"detail\">{redirect}</span>.</p>\n<form method=\"post\">{hidden}{buttons}\
<button type=\"submit\" name=\"cancel\" value=\"1\" class=\"secondary\">Cancel</button></form>",
        client = escape(&request.client_id),
        redirect = escape(&request.redirect_uri),
        buttons = html::user_buttons(&sh.config.idp.users),
    );
    html::page(StatusCode::OK, "Sign in", &body)
}

/// `POST /{tenant}/oauth2/v2.0/authorize`: signs the chosen user in (or cancels) and
/// redirects to the app. The form's fields override the query's.
pub(crate) async fn sign_in(
    State(sh): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    query: Result<Query<Params>, QueryRejection>,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    let (Ok(Query(mut params)), Ok(Form(form))) = (query, form) else {
        return Refused::Page("The sign-in form cannot be read.".into()).into_response();
    };
    params.extend(form);
    let request = match parse(&sh, &tenant, &params) {
        Ok(request) => request,
        Err(refused) => return refused.into_response(),
    };
    if params.contains_key("cancel") {
        let description = "The user cancelled the sign-in.".to_owned();
        let AuthorizeRequest { redirect_uri, state, .. } = request;
        return Refused::Redirect { redirect_uri, state, error: "access_denied", description }.into_response();
    }
    let name = params.get("user").map(String::as_str).unwrap_or("");
    let Some(user) = sh.config.idp.user(name) else {
        return html::refusal("Sign-in refused", &format!("There is no user '{name}'."));
    };
    let code = random_token();
    let record = AuthCode {
        sign_in: SignIn {
            client_id: request.client_id,
            user: user.clone(),
            scope: request.scope,
            auth_time: sh.now().unix_timestamp(),
        },
        redirect_uri: request.redirect_uri.clone(),
        code_challenge: request.code_challenge,
        nonce: request.nonce,
        expires_at: sh.monotonic() + AUTH_CODE_TTL,
    };
    let now = sh.monotonic();
    sh.lock().idp.insert_code(code.clone(), record, now);
    tracing::info!(user = %user.name, "dev identity provider signed a user in");
    let mut pairs = vec![("code", code.as_str())];
    pairs.extend(request.state.as_deref().map(|s| ("state", s)));
    match with_query(&request.redirect_uri, pairs) {
        Some(location) => found(&location),
        None => html::refusal("Sign-in refused", "The redirect URI cannot be read."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_loopback_uris_and_registered_ones_may_receive_codes() {
        let config =
            DevIdpConfig { redirect_uris: vec!["https://dualkey.example/ui/callback".into()], ..Default::default() };
        let allowed = [
            "http://127.0.0.1:8080/ui/callback",
            "http://localhost:3000/cb?x=1",
            "http://[::1]:9/",
            "http://127.0.0.1/cb",
            "https://dualkey.example/ui/callback",
        ];
        for uri in allowed {
            assert!(redirect_allowed(&config, uri), "{uri} should be allowed");
        }
        let refused = [
            "https://127.0.0.1:8080/cb",
            "http://127.0.0.1.evil.example/cb",
            "http://127.0.0.1@evil.example/cb",
            "http://user@127.0.0.1:1/cb",
            "http://127.0.0.1:1/cb#frag",
            "http://10.0.0.1:80/cb",
            "https://dualkey.example/ui/callback/extra",
            "http://localhost.evil.example:80/",
            "javascript:alert(1)",
            "",
        ];
        for uri in refused {
            assert!(!redirect_allowed(&config, uri), "{uri} should be refused");
        }
    }

    #[test]
    fn an_s256_challenge_is_43_base64url_characters() {
        assert!(is_s256_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!is_s256_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c"));
        assert!(!is_s256_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"));
    }
}
