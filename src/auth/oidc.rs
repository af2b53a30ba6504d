//! The console's OpenID Connect relying party: discovery, the authorization request (code flow
//! with PKCE S256, `state`, `nonce`), the code exchange, and ID token verification. ID tokens
//! are checked like API tokens (signature by `kid` from the discovered `jwks_uri`, RS256 only,
//! `iss`, `aud` = `client_id`, `exp`/`nbf` on the clock) plus `nonce` and `azp`.

use super::{AuthError, JwksCache, Verifier, check_times};
use crate::clock::{Monotonic, SharedClock};
use crate::secret::Secret;
use crate::settings::{AuthSettings, OidcSettings};
use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use serde::Deserialize;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// After a failed discovery, the provider is not asked again for this long (sign-in pages are
/// open to anyone, so they must not turn into a flood of requests to the provider).
const DISCOVERY_RETRY: Duration = Duration::from_secs(5);

/// Why a sign-in could not be completed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OidcError {
    /// The provider could not be reached or answered nonsense: try again later.
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
    /// The provider or the browser sent something dualkey refuses. The reason is for logs.
    #[error("sign-in refused: {0}")]
    Refused(String),
}

impl From<AuthError> for OidcError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unavailable(why) => Self::Unavailable(why),
            other => Self::Refused(other.to_string()),
        }
    }
}

/// The endpoints of the provider, from its discovery document.
pub(crate) struct Provider {
    pub authorization_endpoint: String,
    token_endpoint: String,
    jwks: JwksCache,
}

#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

/// What one sign-in sends the browser to the provider with.
pub(crate) struct AuthorizationRequest<'a> {
    pub state: &'a str,
    pub nonce: &'a str,
    /// The PKCE verifier; its S256 challenge goes in the URL.
    pub verifier: &'a str,
    /// For a step-up: `prompt=login` and this `max_age`.
    pub reauth: Option<Duration>,
}

pub(crate) struct Oidc {
    settings: OidcSettings,
    client_secret: Option<Secret>,
    redirect_uri: String,
    http: reqwest::Client,
    clock: SharedClock,
    leeway_secs: u64,
    jwks_limits: (Duration, Duration),
    provider: tokio::sync::Mutex<Option<Arc<Provider>>>,
    failed_at: Mutex<Option<Monotonic>>,
    /// The origin of the authorization endpoint (the issuer's until discovery says otherwise).
    origin: Mutex<String>,
}

/// `scheme://host[:port]` of `url`, if it is one.
fn origin_of(url: &str) -> Option<String> {
    reqwest::Url::parse(url).ok().map(|u| u.origin().ascii_serialization()).filter(|o| o != "null")
}

impl Oidc {
    /// A relying party for `settings`, whose callback is `redirect_uri`. Reads the client secret
    /// file now; discovery waits for the first sign-in.
    pub(crate) fn new(
        settings: &OidcSettings,
        auth: &AuthSettings,
        redirect_uri: String,
        clock: SharedClock,
    ) -> anyhow::Result<Self> {
        let timeout = settings.timeout.get();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            client_secret: settings.client_secret()?,
            settings: settings.clone(),
            redirect_uri,
            http,
            clock,
            leeway_secs: auth.leeway.get().as_secs(),
            jwks_limits: (auth.jwks_min_refresh.get(), auth.jwks_max_age.get()),
            provider: tokio::sync::Mutex::new(None),
            failed_at: Mutex::new(None),
            origin: Mutex::new(origin_of(&settings.issuer).unwrap_or_default()),
        })
    }

    /// Where the browser is sent to sign in (for the console's `form-action`).
    pub(crate) fn provider_origin(&self) -> Option<String> {
        Some(self.origin.lock().unwrap_or_else(|e| e.into_inner()).clone()).filter(|o| !o.is_empty())
    }

    /// The provider's endpoints, discovered once (again after a failure, at most every 5 s).
    pub(crate) async fn provider(&self) -> Result<Arc<Provider>, OidcError> {
        let mut cached = self.provider.lock().await;
        if let Some(p) = &*cached {
            return Ok(p.clone());
        }
        let now = self.clock.monotonic();
        let failed_at = *self.failed_at.lock().unwrap_or_else(|e| e.into_inner());
        if failed_at.is_some_and(|at| now - at < DISCOVERY_RETRY) {
            return Err(OidcError::Unavailable("discovery failed a moment ago".into()));
        }
        match self.discover().await {
            Ok(p) => {
                let p = Arc::new(p);
                *cached = Some(p.clone());
                Ok(p)
            }
            Err(e) => {
                *self.failed_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
                tracing::warn!(error = %e, "OpenID Connect discovery failed");
                Err(e)
            }
        }
    }

    async fn discover(&self) -> Result<Provider, OidcError> {
        let issuer = self.settings.issuer.trim_end_matches('/');
        let url = format!("{issuer}/.well-known/openid-configuration");
        let unavailable = |e: reqwest::Error| OidcError::Unavailable(format!("discovery at {url}: {e}"));
        let doc: DiscoveryDocument = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(unavailable)?
            .error_for_status()
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        // OpenID Connect Discovery §4.3: the document must name the issuer it was fetched for.
        if doc.issuer != self.settings.issuer {
            return Err(OidcError::Unavailable(format!(
                "discovery names issuer `{}`, not the configured `{}`",
                crate::logsafe::untrusted(&doc.issuer),
                self.settings.issuer
            )));
        }
        if let Some(origin) = origin_of(&doc.authorization_endpoint) {
            *self.origin.lock().unwrap_or_else(|e| e.into_inner()) = origin;
        }
        let (min_refresh, max_age) = self.jwks_limits;
        let jwks = JwksCache::new(self.http.clone(), doc.jwks_uri, min_refresh, max_age, self.clock.clone());
        Ok(Provider { authorization_endpoint: doc.authorization_endpoint, token_endpoint: doc.token_endpoint, jwks })
    }

    /// The URL the browser is sent to: the code flow with PKCE S256, `state`, `nonce` and the
    /// query response mode.
    pub(crate) fn authorization_url(&self, p: &Provider, req: &AuthorizationRequest<'_>) -> Result<String, OidcError> {
        let mut url = reqwest::Url::parse(&p.authorization_endpoint)
            .map_err(|e| OidcError::Unavailable(format!("authorization_endpoint is not a URL: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("response_mode", "query")
                .append_pair("client_id", &self.settings.client_id)
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("scope", &self.settings.scopes.join(" "))
                .append_pair("state", req.state)
                .append_pair("nonce", req.nonce)
                .append_pair("code_challenge", &pkce_challenge(req.verifier))
                .append_pair("code_challenge_method", "S256");
            if let Some(max_age) = req.reauth {
                q.append_pair("prompt", "login").append_pair("max_age", &max_age.as_secs().to_string());
            }
        }
        Ok(url.into())
    }

    /// Exchanges an authorization code for the provider's ID token (RFC 6749 §4.1.3, PKCE).
    pub(crate) async fn exchange(&self, p: &Provider, code: &str, verifier: &str) -> Result<String, OidcError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("client_id", self.settings.client_id.as_str()),
            ("code_verifier", verifier),
        ];
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret.expose()));
        }
        let unavailable = |e: reqwest::Error| OidcError::Unavailable(format!("token endpoint: {e}"));
        let response = self.http.post(&p.token_endpoint).form(&form).send().await.map_err(unavailable)?;
        let status = response.status();
        let body: Value = response.json().await.map_err(unavailable)?;
        if !status.is_success() {
            let error = body.get("error").and_then(Value::as_str).unwrap_or("no error code");
            let text = format!("token endpoint answered {status}: {error}");
            return Err(if status.is_server_error() { OidcError::Unavailable(text) } else { OidcError::Refused(text) });
        }
        body.get("id_token")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| OidcError::Refused("the token endpoint gave no id_token".into()))
    }

    /// Verifies an ID token and returns its claims and the person it names (by the same
    /// `[auth]` claims as the API, so a person is one principal everywhere).
    pub(crate) async fn verify_id_token(
        &self,
        p: &Provider,
        verifier: &Verifier,
        id_token: &str,
        nonce: &str,
    ) -> Result<(Value, super::Principal), OidcError> {
        let header = decode_header(id_token).map_err(|e| OidcError::Refused(format!("malformed ID token: {e}")))?;
        if header.alg != Algorithm::RS256 {
            return Err(OidcError::Refused(format!("ID token algorithm {:?} is not accepted", header.alg)));
        }
        let kid = header.kid.ok_or_else(|| OidcError::Refused("ID token without kid".into()))?;
        let key = p.jwks.key(&kid).await?;
        let mut v = Validation::new(Algorithm::RS256);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.set_issuer(&[&self.settings.issuer]);
        v.set_audience(&[&self.settings.client_id]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = decode::<Value>(id_token, &key, &v).map_err(|e| OidcError::Refused(format!("ID token: {e}")))?;
        let claims = data.claims;
        check_times(&claims, self.clock.now().unix_ms() / 1000, self.leeway_secs)?;
        if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
            return Err(OidcError::Refused("ID token nonce does not match the sign-in".into()));
        }
        if claims.get("azp").and_then(Value::as_str).is_some_and(|azp| azp != self.settings.client_id) {
            return Err(OidcError::Refused("ID token azp is another client".into()));
        }
        let principal = verifier.principal(&claims)?;
        Ok((claims, principal))
    }
}

/// The PKCE S256 challenge of `verifier` (RFC 7636 §4.2).
pub(crate) fn pkce_challenge(verifier: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_pkce_challenge_is_unpadded_base64url_of_the_verifiers_sha256() {
        // Computed apart: python3 -c "import hashlib,base64; print(base64.urlsafe_b64encode(
        // hashlib.sha256(b'dBjftJeZ4CVP-mB92K27uhbUJU1p1r7wW1gFWFOEjXk').digest()).rstrip(b'='))"
        assert_eq!(
            super::pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r7wW1gFWFOEjXk"),
            "bwWFMyPfdG9qreDhH2lmftFx_dFeLDalzcT1gb_j68g"
        );
    }
}
