//! What a relying party reads before anyone signs in: the OpenID Connect discovery document
//! and the JWKS; and sign-out, which has no session to end here.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::authorize::{found, redirect_allowed, with_query};
use super::html;
use super::oauth::OAuthError;
use super::scope::STANDARD_SCOPES;
use crate::mde::simulator::state::Shared;

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
pub(crate) async fn openid_configuration(State(sh): State<Arc<Shared>>, Path(tenant): Path<String>) -> Response {
    if let Err(refused) = OAuthError::check_tenant(&sh, &tenant) {
        return refused.into_response();
    }
    let mut scopes: Vec<&str> = STANDARD_SCOPES.to_vec();
    scopes.push(&sh.config.idp.api_scope);
    Json(json!({
        "issuer": sh.idp_issuer(),
        "authorization_endpoint": sh.idp_url("oauth2/v2.0/authorize"),
        "token_endpoint": sh.token_url(),
        "device_authorization_endpoint": sh.idp_url("oauth2/v2.0/devicecode"),
        "jwks_uri": sh.idp_jwks_url(),
        "end_session_endpoint": sh.idp_url("oauth2/v2.0/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            super::DEVICE_CODE_GRANT,
            "client_credentials",
        ],
        "subject_types_supported": ["pairwise"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        "prompt_values_supported": ["login", "select_account", "consent", "none"],
        "scopes_supported": scopes,
        "claims_supported": [
            "iss", "aud", "sub", "oid", "tid", "name", "preferred_username", "upn", "email", "roles",
            "nonce", "auth_time", "amr", "iat", "nbf", "exp", "ver",
        ],
        "tenant_region_scope": "NA",
        "request_uri_parameter_supported": false,
    }))
    .into_response()
}

/// `GET /{tenant}/discovery/v2.0/keys`: the one signing key.
pub(crate) async fn jwks(State(sh): State<Arc<Shared>>, Path(tenant): Path<String>) -> Response {
    if let Err(refused) = OAuthError::check_tenant(&sh, &tenant) {
        return refused.into_response();
    }
    Json(json!({"keys": [sh.idp_key().jwk()]})).into_response()
}

/// `GET /{tenant}/oauth2/v2.0/logout?post_logout_redirect_uri=...&state=...`: back to the
/// app when it names an allowed redirect URI, else a "signed out" page.
pub(crate) async fn logout(
    State(sh): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if tenant != sh.config.tenant_id {
        return html::refusal("Sign-out refused", &format!("Tenant '{tenant}' is not served here."));
    }
    let params = query.map(|Query(q)| q).unwrap_or_default();
    if let Some(target) = params.get("post_logout_redirect_uri")
        && redirect_allowed(&sh.config.idp, target)
    {
        let state = params.get("state").map(|s| ("state", s.as_str()));
        if let Some(location) = with_query(target, state) {
            return found(&location);
        }
    }
    let body = "<p>You are signed out of the development identity provider. You can close this page.</p>";
    html::page(StatusCode::OK, "Signed out", body)
}
