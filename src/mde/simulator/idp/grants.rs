//! The identity provider's grants at the token endpoint: authorization code (PKCE S256, single
//! use, bound to client and redirect URI), refresh token (rotated), and device code (RFC 8628
//! polling).

use std::collections::HashMap;

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::DEVICE_CODE_GRANT;
use super::mint::{Redeemed, issue};
use super::oauth::{OAuthError, authenticate_client};
use super::scope::Scope;
use super::state::{CodeRedemption, Poll, RefreshRedemption};
use crate::mde::simulator::state::Shared;

type Params = HashMap<String, String>;

/// A required, non-empty form parameter.
fn required<'a>(form: &'a Params, name: &str) -> Result<&'a str, OAuthError> {
    form.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::new("invalid_request", format!("The request must contain the parameter '{name}'.")))
}

/// Whether the token endpoint hands `grant_type` to the identity provider.
pub(crate) fn handles(grant_type: &str) -> bool {
    matches!(grant_type, "authorization_code" | "refresh_token" | DEVICE_CODE_GRANT)
}

/// Answers a token request of a grant type [`handles`] accepts.
pub(crate) fn grant(sh: &Shared, grant_type: &str, form: &Params, headers: &HeaderMap) -> Response {
    let answer = authenticate_client(&sh.config.idp, form, headers).and_then(|client_id| match grant_type {
        "authorization_code" => authorization_code(sh, &client_id, form),
        "refresh_token" => refresh_token(sh, &client_id, form),
        _ => device_code(sh, &client_id, form),
    });
    answer.unwrap_or_else(IntoResponse::into_response)
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
fn is_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn authorization_code(sh: &Shared, client_id: &str, form: &Params) -> Result<Response, OAuthError> {
    let code = required(form, "code")?;
    let redirect_uri = required(form, "redirect_uri")?;
    let verifier = required(form, "code_verifier")?;
    let now = sh.monotonic();
    let redemption = sh.lock().idp.redeem_code(code, now);
    let (record, family) = match redemption {
        CodeRedemption::Fresh(record, family) => (record, family),
        CodeRedemption::Expired => return Err(OAuthError::invalid_grant("The authorization code has expired.")),
        CodeRedemption::Replayed => {
            let d = "The authorization code was already redeemed; the tokens issued from it are revoked.";
            return Err(OAuthError::invalid_grant(d));
        }
        CodeRedemption::Unknown => return Err(OAuthError::invalid_grant("The authorization code is not valid.")),
    };
    if record.sign_in.client_id != client_id {
        return Err(OAuthError::invalid_grant("The authorization code was issued to another client."));
    }
    if record.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant("redirect_uri differs from the one of the authorization request."));
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if !is_verifier(verifier) || computed != record.code_challenge {
        return Err(OAuthError::invalid_grant("The code_verifier does not match the code_challenge."));
    }
    let sign_in = &record.sign_in;
    let redeemed = Redeemed { sign_in, scope: &sign_in.scope, nonce: record.nonce.as_deref(), family };
    Ok(issue(sh, redeemed, "authorization_code"))
}

fn refresh_token(sh: &Shared, client_id: &str, form: &Params) -> Result<Response, OAuthError> {
    let token = required(form, "refresh_token")?;
    let redemption = sh.lock().idp.redeem_refresh(token);
    let (sign_in, family) = match redemption {
        RefreshRedemption::Fresh(sign_in, family) => (sign_in, family),
        RefreshRedemption::Replayed => {
            let d = "The refresh token was already used or revoked; the tokens that replaced it are revoked too.";
            return Err(OAuthError::invalid_grant(d));
        }
        RefreshRedemption::Unknown => return Err(OAuthError::invalid_grant("The refresh token is not valid.")),
    };
    if sign_in.client_id != client_id {
        return Err(OAuthError::invalid_grant("The refresh token was issued to another client."));
    }
    let scope = match form.get("scope").filter(|s| !s.trim().is_empty()) {
        None => sign_in.scope.clone(),
        Some(raw) => {
            let asked =
                Scope::parse(Some(raw), &sh.config.idp).map_err(|r| OAuthError::new("invalid_scope", r.description))?;
            if !asked.is_within(&sign_in.scope) {
                return Err(OAuthError::new("invalid_scope", "The scope asks for more than the sign-in granted."));
            }
            asked
        }
    };
    // OpenID Connect Core §12.2: a refreshed ID token should carry no nonce.
    Ok(issue(sh, Redeemed { sign_in: &sign_in, scope: &scope, nonce: None, family }, "refresh_token"))
}

fn device_code(sh: &Shared, client_id: &str, form: &Params) -> Result<Response, OAuthError> {
    let device_code = required(form, "device_code")?;
    let now = sh.monotonic();
    let poll = {
        let mut state = sh.lock();
        match state.idp.devices.get(device_code) {
            None => None,
            Some(grant) if grant.client_id != client_id => {
                return Err(OAuthError::invalid_grant("The device code was issued to another client."));
            }
            Some(_) => state.idp.poll_device(device_code, now),
        }
    };
    let sign_in = match poll {
        Some(Poll::Approved(sign_in)) => sign_in,
        Some(Poll::Pending) => {
            return Err(OAuthError::new("authorization_pending", "The user has not yet answered the sign-in request."));
        }
        Some(Poll::SlowDown) => {
            let d = "Polled sooner than the interval allows; the interval is now 5 seconds longer.";
            return Err(OAuthError::new("slow_down", d));
        }
        Some(Poll::Denied) => return Err(OAuthError::new("access_denied", "The user declined the sign-in request.")),
        Some(Poll::Expired) => return Err(OAuthError::new("expired_token", "The device code has expired.")),
        None => return Err(OAuthError::invalid_grant("The device code is not valid or was already redeemed.")),
    };
    let family = sh.lock().idp.new_family();
    Ok(issue(sh, Redeemed { sign_in: &sign_in, scope: &sign_in.scope, nonce: None, family }, DEVICE_CODE_GRANT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verifier_is_43_to_128_unreserved_characters() {
        assert!(is_verifier(&"a".repeat(43)));
        assert!(is_verifier(&"~._-".repeat(32)));
        assert!(!is_verifier(&"a".repeat(42)));
        assert!(!is_verifier(&"a".repeat(129)));
        assert!(!is_verifier(&format!("{}+", "a".repeat(43))));
    }
}
