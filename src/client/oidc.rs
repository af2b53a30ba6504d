//! The identity provider side of the client: the server's `client-config`, OIDC discovery, and
//! the token endpoint (device code polls and refreshes). No token is ever put in an error.

use super::ClientError;
use super::credentials::{Login, Token};
use crate::clock::Timestamp;
use serde::Deserialize;
use std::time::Duration;

/// The device code grant's `grant_type` (RFC 8628 §3.4).
pub(crate) const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// `GET /api/v1/client-config`: what the server trusts, so the client asks the right issuer.
#[derive(Deserialize, Debug)]
pub(crate) struct ClientConfig {
    pub issuer: String,
    pub cli_client_id: String,
    /// `null` when the server's `[oidc]` names none: then no token it would accept can be asked for.
    pub api_scope: Option<String>,
}

/// The parts of the OpenID provider metadata the client uses.
#[derive(Deserialize, Debug)]
pub(crate) struct Provider {
    pub issuer: String,
    pub token_endpoint: String,
    pub device_authorization_endpoint: Option<String>,
}

/// A successful token endpoint answer.
#[derive(Deserialize)]
pub(crate) struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    /// Seconds; Entra sends a number, some providers a string.
    #[serde(deserialize_with = "crate::lenient::lenient_u32")]
    expires_in: u32,
}

/// An OAuth error answer (`{"error", "error_description"}`).
#[derive(Deserialize, Debug)]
pub(crate) struct OAuthError {
    pub error: String,
    #[serde(default)]
    pub error_description: Option<String>,
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error_description {
            Some(d) => write!(f, "{}: {}", self.error, d.lines().next().unwrap_or_default()),
            None => f.write_str(&self.error),
        }
    }
}

/// What one token request came back with.
pub(crate) enum TokenOutcome {
    Issued(TokenAnswer),
    Refused(OAuthError),
}

/// The HTTP client for the server and the identity provider: bounded waits, no redirects (a
/// bearer token is only ever sent to the URL it was meant for).
pub(crate) fn http_client() -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .user_agent(concat!("dualkey/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| ClientError::other(format!("cannot build the HTTP client: {e}")))
}

/// Refuses a URL that would carry tokens in the clear: https, or http to this machine only.
pub(crate) fn check_transport(what: &str, url: &str) -> Result<reqwest::Url, ClientError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| ClientError::Usage(format!("{what} `{url}` is not a URL ({e})")))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = crate::net::is_loopback_host(host);
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        "http" => Err(ClientError::Usage(format!(
            "{what} `{url}` is plain http to another machine: tokens would travel in the clear; use https"
        ))),
        _ => Err(ClientError::Usage(format!("{what} `{url}` must be an https URL"))),
    }
}

/// Fetches the server's `client-config` (no token needed).
pub(crate) async fn client_config(http: &reqwest::Client, server: &str) -> Result<ClientConfig, ClientError> {
    let r =
        http.get(format!("{server}/api/v1/client-config")).send().await.map_err(|e| unreachable_error(server, e))?;
    if !r.status().is_success() {
        return Err(super::session::api_failure(r).await);
    }
    r.json().await.map_err(|e| ClientError::other(format!("{server} sent a client-config that cannot be read: {e}")))
}

/// Reads `{issuer}/.well-known/openid-configuration` and checks it is the issuer's own.
pub(crate) async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Provider, ClientError> {
    check_transport("the issuer", issuer)?;
    let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let r = http.get(&url).send().await.map_err(|e| unreachable_error(&url, e))?;
    if !r.status().is_success() {
        return Err(ClientError::other(format!("OIDC discovery at {url} answered {}", r.status())));
    }
    let provider: Provider =
        r.json().await.map_err(|e| ClientError::other(format!("OIDC discovery at {url} cannot be read: {e}")))?;
    // OpenID Connect Discovery §4.3: metadata naming another issuer must not be used.
    if provider.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(ClientError::other(format!(
            "OIDC discovery at {url} names the issuer `{}`, not `{issuer}`",
            provider.issuer
        )));
    }
    check_transport("the token endpoint", &provider.token_endpoint)?;
    Ok(provider)
}

/// Posts `form` to a token endpoint: tokens, or the provider's OAuth error.
pub(crate) async fn token_request(
    http: &reqwest::Client,
    endpoint: &str,
    form: &[(&str, &str)],
) -> Result<TokenOutcome, ClientError> {
    let r = http.post(endpoint).form(form).send().await.map_err(|e| unreachable_error(endpoint, e))?;
    let status = r.status();
    let body = r.bytes().await.map_err(|e| unreachable_error(endpoint, e))?;
    if status.is_success() {
        return serde_json::from_slice(&body).map(TokenOutcome::Issued).map_err(|e| {
            ClientError::other(format!("the token endpoint {endpoint} sent an answer that cannot be read: {e}"))
        });
    }
    match serde_json::from_slice::<OAuthError>(&body) {
        Ok(e) => Ok(TokenOutcome::Refused(e)),
        Err(_) => Err(ClientError::other(format!("the token endpoint {endpoint} answered {status}"))),
    }
}

/// Trades the login's refresh token for new tokens, keeping the old refresh token when the
/// provider does not rotate it (Entra and the dev IdP do: the old one stops working).
pub(crate) async fn refresh(http: &reqwest::Client, login: &Login, now: Timestamp) -> Result<Login, ClientError> {
    let Some(refresh_token) = &login.refresh_token else {
        return Err(ClientError::other("the stored sign-in has no refresh token: run `dualkey login` again"));
    };
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose()),
        ("client_id", login.client_id.as_str()),
        ("scope", login.scope.as_str()),
    ];
    match token_request(http, &login.token_endpoint, &form).await? {
        TokenOutcome::Issued(t) => {
            let fresh = t.into_login(now, &login.token_endpoint, &login.issuer, &login.client_id, &login.scope);
            Ok(Login {
                refresh_token: fresh.refresh_token.or_else(|| login.refresh_token.clone()),
                logged_in_at: login.logged_in_at,
                ..fresh
            })
        }
        TokenOutcome::Refused(e) => Err(ClientError::other(format!(
            "the identity provider refused to renew the sign-in ({e}): run `dualkey login` again"
        ))),
    }
}

impl TokenAnswer {
    /// The login these tokens make, its expiry counted from `now` (when they were asked for).
    pub(crate) fn into_login(
        self,
        now: Timestamp,
        token_endpoint: &str,
        issuer: &str,
        client_id: &str,
        scope: &str,
    ) -> Login {
        Login {
            access_token: Token::new(self.access_token),
            refresh_token: self.refresh_token.map(Token::new),
            expires_at: now.plus(Duration::from_secs(self.expires_in.into())),
            token_endpoint: token_endpoint.to_string(),
            issuer: issuer.to_string(),
            client_id: client_id.to_string(),
            scope: scope.to_string(),
            logged_in_at: now,
        }
    }
}

pub(crate) fn unreachable_error(url: &str, e: reqwest::Error) -> ClientError {
    // reqwest's message names the URL, never a header or form field.
    let cause = std::error::Error::source(&e).map(|s| format!(": {s}")).unwrap_or_default();
    ClientError::other(format!("cannot reach {url} ({e}{cause})"))
}
