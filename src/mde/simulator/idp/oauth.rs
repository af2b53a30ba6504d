//! How the identity provider answers OAuth errors (RFC 6749 §5.2 JSON: `{error,
//! error_description}`, 400, or 401 for `invalid_client`) and how it authenticates the client
//! at the token and device code endpoints.

use std::collections::HashMap;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::config::DevIdpConfig;
use super::mint::no_store;
use crate::mde::simulator::state::Shared;

type Params = HashMap<String, String>;

/// An OAuth error answer.
pub(crate) struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// The client tried HTTP Basic: a 401 must then say `WWW-Authenticate: Basic`.
    basic: bool,
}

impl OAuthError {
    /// A 400 with `error`.
    pub(crate) fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, error, description: description.into(), basic: false }
    }

    fn invalid_client(description: impl Into<String>, basic: bool) -> Self {
        Self { status: StatusCode::UNAUTHORIZED, error: "invalid_client", description: description.into(), basic }
    }

    pub(crate) fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new("invalid_grant", description)
    }

    /// Refuses a tenant other than the simulator's.
    pub(crate) fn check_tenant(sh: &Shared, tenant: &str) -> Result<(), Self> {
        if tenant == sh.config.tenant_id {
            Ok(())
        } else {
            Err(Self::new("invalid_tenant", format!("Tenant '{tenant}' is not served here.")))
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut response = no_store((self.status, Json(body)).into_response());
        if self.basic && self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
        }
        response
    }
}

/// Undoes the form-encoding RFC 6749 §2.3.1 asks clients to apply to Basic credentials.
fn form_decode(value: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(value.len());
    let mut input = value.bytes();
    while let Some(b) = input.next() {
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = [input.next()?, input.next()?];
                bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b => bytes.push(b),
        }
    }
    String::from_utf8(bytes).ok()
}

/// Whether `given` is `expected`, as sent or form-decoded (many clients do not encode), in
/// constant time for each comparison.
fn same(expected: &str, given: &str) -> bool {
    let eq = |a: &str, b: &str| aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok();
    eq(expected, given) || form_decode(given).is_some_and(|decoded| eq(expected, &decoded))
}

/// The client id and secret of an `Authorization: Basic` header, as sent.
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), OAuthError>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = STANDARD.decode(encoded.trim()).ok().and_then(|b| String::from_utf8(b).ok());
    Some(match decoded.as_deref().and_then(|d| d.split_once(':')) {
        Some((id, secret)) => Ok((id.to_owned(), secret.to_owned())),
        None => Err(OAuthError::invalid_client("The Basic credentials cannot be read.", true)),
    })
}

/// Authenticates the client: its id must be the registered one; a confidential client must
/// present its secret (form field or HTTP Basic, not both), a public one must present none.
pub(crate) fn authenticate_client(
    config: &DevIdpConfig,
    form: &Params,
    headers: &HeaderMap,
) -> Result<String, OAuthError> {
    if form.contains_key("client_assertion") {
        return Err(OAuthError::invalid_client("Client assertions are not accepted here.", false));
    }
    let (client_id, secret, basic) = match basic_credentials(headers).transpose()? {
        Some((id, secret)) => {
            if form.contains_key("client_secret") {
                let d = "The client presented a secret both in the Authorization header and in the body.";
                return Err(OAuthError::new("invalid_request", d));
            }
            if !same(&config.client_id, &id) {
                let d = format!("No application with client id '{id}' is registered.");
                return Err(OAuthError::invalid_client(d, true));
            }
            if form.get("client_id").is_some_and(|f| *f != config.client_id) {
                return Err(OAuthError::new("invalid_request", "client_id differs from the Basic credentials."));
            }
            (config.client_id.clone(), Some(secret), true)
        }
        None => (form.get("client_id").cloned().unwrap_or_default(), form.get("client_secret").cloned(), false),
    };
    if client_id != config.client_id {
        let d = format!("No application with client id '{client_id}' is registered.");
        return Err(OAuthError::invalid_client(d, basic));
    }
    match (&config.client_secret, secret) {
        (None, None) => Ok(client_id),
        (None, Some(_)) => {
            Err(OAuthError::invalid_client("The client is public: it must not present a client secret.", basic))
        }
        (Some(expected), Some(given)) if same(expected.expose(), &given) => Ok(client_id),
        (Some(_), Some(_)) => Err(OAuthError::invalid_client("The client secret is wrong.", basic)),
        (Some(_), None) => Err(OAuthError::invalid_client("The client must present its client secret.", basic)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn form(pairs: &[(&str, &str)]) -> Params {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn basic(id: &str, secret: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn a_public_client_is_known_by_its_id_and_must_not_present_a_secret() {
        let config = DevIdpConfig::default();
        let none = HeaderMap::new();
        assert!(authenticate_client(&config, &form(&[("client_id", "dualkey-dev-app")]), &none).is_ok());
        let with_secret = form(&[("client_id", "dualkey-dev-app"), ("client_secret", "x")]);
        assert_eq!(authenticate_client(&config, &with_secret, &none).unwrap_err().status, 401);
        assert_eq!(
            authenticate_client(&config, &form(&[("client_id", "other")]), &none).unwrap_err().error,
            "invalid_client"
        );
    }

    #[test]
    fn a_confidential_client_needs_its_secret_in_the_body_or_in_basic_but_not_both() {
        let config = DevIdpConfig { client_secret: Some(Secret::new("s3cr3t+/=")), ..Default::default() };
        let none = HeaderMap::new();
        let body = form(&[("client_id", "dualkey-dev-app"), ("client_secret", "s3cr3t+/=")]);
        assert!(authenticate_client(&config, &body, &none).is_ok());
        assert!(authenticate_client(&config, &form(&[]), &basic("dualkey-dev-app", "s3cr3t%2B%2F%3D")).is_ok());
        assert!(authenticate_client(&config, &form(&[]), &basic("dualkey-dev-app", "s3cr3t+/=")).is_ok());
        let wrong = authenticate_client(&config, &form(&[]), &basic("dualkey-dev-app", "nope")).unwrap_err();
        assert_eq!((wrong.status, wrong.basic), (StatusCode::UNAUTHORIZED, true));
        let both = authenticate_client(&config, &body, &basic("dualkey-dev-app", "s3cr3t")).unwrap_err();
        assert_eq!(both.error, "invalid_request");
        let missing = authenticate_client(&config, &form(&[("client_id", "dualkey-dev-app")]), &none).unwrap_err();
        assert_eq!(missing.error, "invalid_client");
    }
}
