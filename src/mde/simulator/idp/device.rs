//! The device authorization grant (RFC 8628) for the terminal client: the device code
//! endpoint, and the verification page where the person enters the code and picks who they
//! are (or declines). Polling the token endpoint is in `grants.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::json;

use super::html::{self, escape};
use super::mint::no_store;
use super::oauth::{OAuthError, authenticate_client};
use super::random_token;
use super::scope::Scope;
use super::state::{DeviceDecision, DeviceGrant};
use crate::mde::simulator::state::Shared;

type Params = HashMap<String, String>;

/// RFC 8628 §6.1's base-20 alphabet: no vowels (no words), no look-alike characters.
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

/// `ABCD-EFGH` from whatever the person typed: case, spaces and dashes do not matter.
fn normalise_user_code(typed: &str) -> Option<String> {
    let letters: String = typed.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect();
    (letters.len() == 8).then(|| format!("{}-{}", &letters[..4], &letters[4..]))
}

fn new_user_code() -> String {
    let mut rng = rand::rng();
    let letters: String =
        (0..8).map(|_| char::from(USER_CODE_ALPHABET[rng.random_range(0..USER_CODE_ALPHABET.len())])).collect();
    format!("{}-{}", &letters[..4], &letters[4..])
}

/// `POST /{tenant}/oauth2/v2.0/devicecode` (form: `client_id`, `scope`).
pub(crate) async fn device_authorization(
    State(sh): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    authorize_device(&sh, &tenant, &headers, form).unwrap_or_else(IntoResponse::into_response)
}

fn authorize_device(
    sh: &Shared,
    tenant: &str,
    headers: &HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Result<Response, OAuthError> {
    OAuthError::check_tenant(sh, tenant)?;
    let Ok(Form(form)) = form else {
        return Err(OAuthError::new("invalid_request", "The body must be a form with client_id and scope."));
    };
    let config = &sh.config.idp;
    let client_id = authenticate_client(config, &form, headers)?;
    let scope = Scope::parse(form.get("scope").map(String::as_str), config)
        .map_err(|r| OAuthError::new(r.error, r.description))?;
    let device_code = random_token();
    let now = sh.monotonic();
    let user_code = {
        let mut state = sh.lock();
        let user_code = loop {
            let candidate = new_user_code();
            if !state.idp.devices.values().any(|d| d.user_code == candidate) {
                break candidate;
            }
        };
        let grant = DeviceGrant {
            client_id,
            scope,
            user_code: user_code.clone(),
            expires_at: now + config.device_code_ttl,
            interval: config.device_interval,
            last_poll: None,
            decision: DeviceDecision::Pending,
        };
        state.idp.insert_device(device_code.clone(), grant, now);
        user_code
    };
    let uri = sh.devicelogin_url();
    let complete = super::authorize::with_query(&uri, [("user_code", user_code.as_str())]).unwrap_or_default();
    let body = json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": uri,
        "verification_uri_complete": complete,
        "expires_in": config.device_code_ttl.as_secs(),
        "interval": config.device_interval.as_secs(),
        "message": format!("To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate."),
    });
    Ok(no_store(Json(body).into_response()))
}

/// `GET /devicelogin[?user_code=...]`: the code box and the user buttons.
pub(crate) async fn show(State(sh): State<Arc<Shared>>, query: Result<Query<Params>, QueryRejection>) -> Response {
    let params = query.map(|Query(q)| q).unwrap_or_default();
    let code = params.get("user_code").map(String::as_str).unwrap_or("");
    let body = format!(
        "<p>Enter the code your terminal shows, then choose who to sign in as.</p>\n\
<form method=\"post\" action=\"/devicelogin\"><label for=\"user_code\">Code</label>\
<input type=\"text\" id=\"user_code\" name=\"user_code\" value=\"{code}\" autocomplete=\"off\" \
spellcheck=\"false\" required>{buttons}\
<button type=\"submit\" name=\"deny\" value=\"1\" class=\"secondary\">Deny</button></form>",
        code = escape(code),
        buttons = html::user_buttons(&sh.config.idp.users),
    );
    html::page(StatusCode::OK, "Sign in on another device", &body)
}

/// `POST /devicelogin` (form: `user_code`, and `user` or `deny=1`): answers the device code.
pub(crate) async fn answer(State(sh): State<Arc<Shared>>, form: Result<Form<Params>, FormRejection>) -> Response {
    let refused = |message: &str| html::refusal("Code not accepted", message);
    let Ok(Form(form)) = form else { return refused("The form cannot be read.") };
    let Some(user_code) = form.get("user_code").and_then(|c| normalise_user_code(c)) else {
        return refused("That is not a code of the form ABCD-EFGH.");
    };
    let decision = if form.get("deny").is_some_and(|d| d == "1") {
        DeviceDecision::Denied
    } else {
        let name = form.get("user").map(String::as_str).unwrap_or("");
        let Some(user) = sh.config.idp.user(name) else { return refused(&format!("There is no user '{name}'.")) };
        DeviceDecision::Approved { user: user.clone(), auth_time: sh.now().unix_timestamp() }
    };
    let now = sh.monotonic();
    {
        let mut state = sh.lock();
        let Some(grant) = state.idp.devices.values_mut().find(|d| d.user_code == user_code && now < d.expires_at)
        else {
            return refused("The code is unknown or has expired. Start the sign-in again on your device.");
        };
        if !matches!(grant.decision, DeviceDecision::Pending) {
            return refused("The code has already been answered.");
        }
        grant.decision = decision.clone();
    }
    let code = escape(&user_code);
    match decision {
        DeviceDecision::Approved { user, .. } => {
            tracing::info!(user = %user.name, "dev identity provider approved a device sign-in");
            let body = format!(
                "<p>You are signed in as <strong>{}</strong> on the device that showed <strong>{code}</strong>. \
You can close this page and return to your terminal.</p>",
                escape(&user.display_name)
            );
            html::page(StatusCode::OK, "Signed in", &body)
        }
        _ => {
            let body = format!("<p>The device that showed <strong>{code}</strong> was not signed in.</p>");
            html::page(StatusCode::OK, "Sign-in declined", &body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_code_is_read_whatever_its_case_and_dashes() {
        assert_eq!(normalise_user_code("bcdf-ghjk").as_deref(), Some("BCDF-GHJK"));
        assert_eq!(normalise_user_code(" BCDF GHJK ").as_deref(), Some("BCDF-GHJK"));
        assert_eq!(normalise_user_code("BCDFGHJ"), None);
    }

    #[test]
    fn new_codes_use_the_base_20_alphabet_in_two_groups_of_four() {
        let code = new_user_code();
        assert_eq!(code.len(), 9);
        assert_eq!(&code[4..5], "-");
        assert!(code.bytes().filter(|b| *b != b'-').all(|b| USER_CODE_ALPHABET.contains(&b)));
    }
}
