//! Tokens for a sign-in: the ID token, the access token (for the API when the API scope was
//! granted, else Microsoft Graph's, as Entra does) and a rotating refresh token, all timed on
//! the simulator's clock, and the token endpoint's answer that carries them.

use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::config::IdTokenFault;
use super::keys::Signature;
use super::random_token;
use super::scope::Scope;
use super::state::SignIn;
use crate::mde::simulator::state::Shared;

/// The `aud` of an access token for the OpenID Connect scopes alone: Microsoft Graph's app id,
/// which no dualkey API accepts.
const GRAPH_AUDIENCE: &str = "00000003-0000-0000-c000-000000000000";
/// The delegated permission an access token for the API carries in `scp`.
const API_PERMISSION: &str = "access_as_user";
/// The tenant named by an ID token broken with [`IdTokenFault::WrongIssuer`].
const OTHER_TENANT: &str = "00000000-0000-4000-8000-0000000bad00";
/// The `aud` of an ID token broken with [`IdTokenFault::WrongAudience`].
const OTHER_CLIENT: &str = "dualkey-other-app";
/// How far in the past an ID token broken with [`IdTokenFault::Expired`] expired.
const EXPIRED_BY: i64 = 600;

#[derive(Serialize)]
struct Claims<'a> {
    iss: String,
    aud: &'a str,
    sub: String,
    oid: &'a str,
    tid: &'a str,
    name: &'a str,
    preferred_username: String,
    upn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scp: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    azp: Option<&'a str>,
    auth_time: i64,
    amr: [&'static str; 1],
    iat: i64,
    nbf: i64,
    exp: i64,
    ver: &'static str,
}

/// Entra's `sub` differs per application: hex of SHA-256 over `audience|user`.
fn pairwise_sub(audience: &str, user: &str) -> String {
    hex::encode(Sha256::digest(format!("{audience}|{user}").as_bytes()))
}

fn claims<'a>(sh: &'a Shared, sign_in: &'a SignIn, scope: &Scope, aud: &'a str, now: i64, ttl: u64) -> Claims<'a> {
    let user = &sign_in.user;
    let roles = Some(user.roles.as_slice()).filter(|r| !r.is_empty());
    Claims {
        iss: sh.idp_issuer(),
        aud,
        sub: pairwise_sub(aud, &user.name),
        oid: &user.name,
        tid: &sh.config.tenant_id,
        name: &user.display_name,
        preferred_username: user.username(),
        upn: user.username(),
        email: scope.has("email").then(|| user.username()),
        roles,
        nonce: None,
        scp: None,
        azp: None,
        auth_time: sign_in.auth_time,
        amr: ["pwd"],
        iat: now,
        nbf: now,
        exp: now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
        ver: "2.0",
    }
}

fn id_token(
    sh: &Shared,
    sign_in: &SignIn,
    scope: &Scope,
    nonce: Option<&str>,
    fault: Option<IdTokenFault>,
    now: i64,
) -> String {
    let config = &sh.config.idp;
    let mut c = claims(sh, sign_in, scope, &sign_in.client_id, now, config.id_token_ttl.as_secs());
    c.nonce = nonce.map(str::to_owned);
    match fault {
        None | Some(IdTokenFault::BadSignature) => {}
        Some(IdTokenFault::WrongAudience) => c.aud = OTHER_CLIENT,
        Some(IdTokenFault::WrongNonce) => c.nonce = Some(random_token()),
        Some(IdTokenFault::WrongIssuer) => c.iss = format!("{}/{OTHER_TENANT}/v2.0", sh.base_url),
        Some(IdTokenFault::Expired) => {
            c.exp = now - EXPIRED_BY;
            c.iat = c.exp - i64::try_from(config.id_token_ttl.as_secs()).unwrap_or(0);
            c.nbf = c.iat;
            c.auth_time = c.auth_time.min(c.iat);
        }
    }
    let signature = if fault == Some(IdTokenFault::BadSignature) { Signature::Broken } else { Signature::Valid };
    sh.idp_key().sign(&c, signature)
}

fn access_token(sh: &Shared, sign_in: &SignIn, scope: &Scope, now: i64) -> String {
    let config = &sh.config.idp;
    let for_api = scope.has(&config.api_scope);
    let aud = if for_api { config.api_audience.as_str() } else { GRAPH_AUDIENCE };
    let granted = scope.to_string();
    let mut c = claims(sh, sign_in, scope, aud, now, config.access_token_ttl.as_secs());
    c.scp = Some(if for_api { API_PERMISSION } else { &granted });
    c.azp = Some(&sign_in.client_id);
    if !for_api {
        c.roles = None;
    }
    sh.idp_key().sign(&c, Signature::Valid)
}

/// What a token request redeemed: a sign-in, the scope asked for now (the sign-in's, or less
/// on a refresh), the nonce to echo, and the refresh family.
pub(crate) struct Redeemed<'a> {
    pub sign_in: &'a SignIn,
    pub scope: &'a Scope,
    pub nonce: Option<&'a str>,
    pub family: u64,
}

/// Issues the tokens and answers the token request: an access token for `scope`, an ID token
/// when it has `openid` (broken if a fault is queued), and, when the sign-in was granted
/// `offline_access`, a new refresh token of the family for the sign-in's whole scope (RFC 6749
/// §6). Counts one success of `grant_type`.
pub(crate) fn issue(sh: &Shared, redeemed: Redeemed<'_>, grant_type: &str) -> Response {
    let Redeemed { sign_in, scope, nonce, family } = redeemed;
    let now = sh.now().unix_timestamp();
    let wants_id_token = scope.has("openid");
    let fault = if wants_id_token { sh.lock().idp.next_fault.take() } else { None };
    let access_token = access_token(sh, sign_in, scope, now);
    let id_token = wants_id_token.then(|| id_token(sh, sign_in, scope, nonce, fault, now));
    let refresh_token = sign_in.scope.has("offline_access").then(random_token);
    {
        let mut state = sh.lock();
        if let Some(token) = &refresh_token {
            state.idp.store_refresh(token.clone(), sign_in.clone(), family);
        }
        state.idp.count_grant(grant_type);
    }
    tracing::info!(user = %sign_in.user.name, grant_type, "dev identity provider issued tokens");
    let seconds = sh.config.idp.access_token_ttl.as_secs();
    let mut body = json!({
        "token_type": "Bearer",
        "scope": scope.to_string(),
        "expires_in": seconds,
        "ext_expires_in": seconds,
        "access_token": access_token,
    });
    if let Some(token) = refresh_token {
        body["refresh_token"] = token.into();
    }
    if let Some(token) = id_token {
        body["id_token"] = token.into();
    }
    no_store(Json(body).into_response())
}

/// Marks a response that carries tokens or codes as not to be cached (RFC 6749 §5.1).
pub(crate) fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pairwise_sub_differs_per_audience_and_per_user() {
        let a = pairwise_sub("dualkey-dev-app", "bob");
        assert_eq!(a.len(), 64);
        assert_ne!(a, pairwise_sub("api://dualkey-dev", "bob"));
        assert_ne!(a, pairwise_sub("dualkey-dev-app", "carol"));
        assert_eq!(a, pairwise_sub("dualkey-dev-app", "bob"));
    }
}
