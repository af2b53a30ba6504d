//! The Entra ID v2 token endpoint: client credentials with a secret or a verified certificate
//! assertion; issues opaque access tokens the API routes accept until they expire. The grants
//! that sign people in (authorization code, refresh, device code) go to the dev identity
//! provider.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::RngCore;
use serde_json::json;

use super::idp;
use super::state::{IssuedToken, Shared};
use super::wire::{Reject, entra_error};
use crate::mde::token::{AssertionClaims, JWT_BEARER, certificate_der, x5t_s256};

type Refusal = Reject;

/// Seconds of clock skew tolerated on an assertion's `nbf` and `exp`.
const ASSERTION_LEEWAY: i64 = 60;

fn refuse(status: StatusCode, error: &str, aadsts: u32, description: &str) -> Refusal {
    entra_error(status, error, aadsts, description).into()
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) async fn token(
    State(sh): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    issue(&sh, &tenant, &headers, form).unwrap_or_else(IntoResponse::into_response)
}

fn issue(
    sh: &Shared,
    tenant: &str,
    headers: &HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<Response, Refusal> {
    let bad = StatusCode::BAD_REQUEST;
    let Ok(Form(form)) = form else {
        let d = "The request body must contain the following parameter: 'grant_type'.";
        return Err(refuse(bad, "invalid_request", 900144, d));
    };
    if tenant != sh.config.tenant_id {
        let d = format!("Tenant '{tenant}' not found.");
        return Err(refuse(bad, "invalid_request", 90002, &d));
    }
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(grant) if idp::handles(grant) => return Ok(idp::grant(sh, grant, &form, headers)),
        _ => {
            let d = "The provided value for the input parameter 'grant_type' is not valid.";
            return Err(refuse(bad, "unsupported_grant_type", 70003, d));
        }
    }
    let client_id = form.get("client_id").map(String::as_str).unwrap_or("");
    if client_id != sh.config.client_id {
        let d = format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'.");
        return Err(refuse(bad, "unauthorized_client", 700016, &d));
    }
    let audience = match form.get("scope").and_then(|s| s.strip_suffix("/.default")) {
        Some(resource) if !resource.is_empty() => resource.to_owned(),
        _ => {
            let d = "The provided value for the input parameter 'scope' is not valid.";
            return Err(refuse(bad, "invalid_scope", 70011, d));
        }
    };
    authenticate(sh, tenant, &form)?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let access_token = URL_SAFE_NO_PAD.encode(bytes);
    let lifetime = sh.config.token_lifetime;
    sh.lock().tokens.insert(
        access_token.clone(),
        IssuedToken { audience, roles: sh.config.app_roles.clone(), expires_at: sh.monotonic() + lifetime },
    );
    sh.lock().idp.count_grant("client_credentials");
    let seconds = lifetime.as_secs();
    let body = json!({
        "token_type": "Bearer",
        "expires_in": seconds,
        "ext_expires_in": seconds,
        "access_token": access_token,
    });
    Ok(Json(body).into_response())
}

/// Checks the client secret or the client assertion against the app registration.
fn authenticate(sh: &Shared, tenant: &str, form: &HashMap<String, String>) -> Result<(), Refusal> {
    let unauthorized = StatusCode::UNAUTHORIZED;
    if let Some(assertion) = form.get("client_assertion") {
        if form.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
            let d = "The provided value for the input parameter 'client_assertion_type' is not valid.";
            return Err(refuse(StatusCode::BAD_REQUEST, "invalid_request", 50027, d));
        }
        return verify_assertion(sh, tenant, assertion);
    }
    match (form.get("client_secret"), &sh.config.client_secret) {
        (Some(given), Some(expected)) if given == expected.expose() => Ok(()),
        (Some(_), _) => {
            let d = "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.";
            Err(refuse(unauthorized, "invalid_client", 7000215, d))
        }
        (None, _) => {
            let d = "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.";
            Err(refuse(StatusCode::BAD_REQUEST, "invalid_client", 7000218, d))
        }
    }
}

/// Verifies a client assertion: certificate thumbprint, signature (PS256 or RS256), `aud`
/// (this endpoint, or the public Entra URL of the tenant), `iss` = `sub` = client id, and the
/// `exp`/`nbf` window.
fn verify_assertion(sh: &Shared, tenant: &str, assertion: &str) -> Result<(), Refusal> {
    let invalid = |aadsts: u32, d: &str| refuse(StatusCode::UNAUTHORIZED, "invalid_client", aadsts, d);
    let Some(certificate) = &sh.config.certificate_pem else {
        return Err(invalid(700027, "No certificate is registered on the application."));
    };
    let header =
        jsonwebtoken::decode_header(assertion).map_err(|_| invalid(50027, "JWT token is invalid or malformed."))?;
    if !matches!(header.alg, Algorithm::PS256 | Algorithm::RS256) {
        return Err(invalid(5002738, "The JWT signature algorithm is not supported."));
    }
    let thumbprint = certificate_der(certificate)
        .map(|der| x5t_s256(&der))
        .map_err(|_| invalid(700027, "The registered certificate cannot be read."))?;
    if header.x5t_s256.as_deref() != Some(thumbprint.as_str()) {
        let d = "The certificate with identifier used to sign the client assertion is not registered on application.";
        return Err(invalid(700027, d));
    }
    let key = DecodingKey::from_rsa_pem(certificate.as_bytes())
        .map_err(|_| invalid(700027, "The registered certificate cannot be read."))?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[
        sh.token_url(),
        format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
        format!("https://login.microsoftonline.us/{tenant}/oauth2/v2.0/token"),
    ]);
    validation.set_issuer(&[&sh.config.client_id]);
    validation.sub = Some(sh.config.client_id.clone());
    // The time range is checked below on the simulator's clock, not the library's.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
    let claims = match jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            return Err(match e.kind() {
                ErrorKind::InvalidSignature => invalid(700027, "Client assertion failed signature validation."),
                _ => invalid(50027, "JWT token is invalid or malformed."),
            });
        }
    };
    let now = sh.now().unix_timestamp();
    if claims.nbf > now + ASSERTION_LEEWAY || claims.exp < now - ASSERTION_LEEWAY {
        return Err(invalid(700024, "Client assertion is not within its valid time range."));
    }
    Ok(())
}
