//! OAuth2 client-credentials tokens from Entra ID (v2 endpoint), with a client secret or a
//! certificate assertion (MDE_API.md section 6), cached until shortly before they expire.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{MdeError, parse_retry_after};
use crate::clock::{Monotonic, SharedClock};
use crate::secret::Secret;
use crate::settings::AssertionAlg;

/// The `client_assertion_type` Entra expects with a certificate assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A cached token is replaced this long before it expires, so it never expires in flight.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// How long a client assertion is valid ("5-10 minutes after nbf at most").
const ASSERTION_LIFETIME: i64 = 300;

/// The JWT algorithm of an assertion signed as `alg` says.
fn jwt_algorithm(alg: AssertionAlg) -> Algorithm {
    match alg {
        AssertionAlg::PS256 => Algorithm::PS256,
        AssertionAlg::RS256 => Algorithm::RS256,
    }
}

/// How the app proves its identity to the token endpoint.
#[derive(Debug, Clone)]
pub enum MdeCredential {
    /// A client secret, sent as `client_secret`.
    ClientSecret(Secret),
    /// A certificate: a JWT signed with `private_key_pem` (PKCS#8 or PKCS#1), whose header
    /// names the certificate by `x5t#S256`.
    Certificate { certificate_pem: String, private_key_pem: Secret, alg: AssertionAlg },
}

/// The claims of a client assertion (Entra `certificate-credentials.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssertionClaims {
    pub aud: String,
    pub iss: String,
    pub sub: String,
    pub jti: String,
    pub nbf: i64,
    pub iat: i64,
    pub exp: i64,
}

/// The DER bytes of the first `CERTIFICATE` block of a PEM text.
pub fn certificate_der(certificate_pem: &str) -> Result<Vec<u8>, MdeError> {
    let bad = || MdeError::Config("certificate is not a PEM CERTIFICATE".into());
    let start = certificate_pem.find("-----BEGIN CERTIFICATE-----").ok_or_else(bad)?;
    let body = &certificate_pem[start + "-----BEGIN CERTIFICATE-----".len()..];
    let end = body.find("-----END CERTIFICATE-----").ok_or_else(bad)?;
    let b64: String = body[..end].split_whitespace().collect();
    STANDARD.decode(b64).map_err(|_| bad())
}

/// The `x5t#S256` header value: base64url (no padding) of the SHA-256 of the certificate DER.
pub fn x5t_s256(certificate_der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(certificate_der))
}

/// Builds and signs a client assertion for `client_id` at `token_url`, issued at `now_unix`.
pub fn client_assertion(
    client_id: &str,
    token_url: &str,
    certificate_pem: &str,
    private_key_pem: &Secret,
    alg: AssertionAlg,
    now_unix: i64,
) -> Result<String, MdeError> {
    let mut header = Header::new(jwt_algorithm(alg));
    header.typ = Some("JWT".into());
    header.x5t_s256 = Some(x5t_s256(&certificate_der(certificate_pem)?));
    let claims = AssertionClaims {
        aud: token_url.to_owned(),
        iss: client_id.to_owned(),
        sub: client_id.to_owned(),
        jti: uuid::Uuid::new_v4().to_string(),
        nbf: now_unix,
        iat: now_unix,
        exp: now_unix + ASSERTION_LIFETIME,
    };
    let key = EncodingKey::from_rsa_pem(private_key_pem.expose().as_bytes())
        .map_err(|_| MdeError::Config("private key is not an RSA PEM key".into()))?;
    jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|e| MdeError::Config(format!("cannot sign the client assertion: {e}")))
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    /// v2 sends a number, v1 a string.
    expires_in: NumberOrString,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrString {
    Number(u64),
    String(String),
}

#[derive(Deserialize)]
struct TokenErrorAnswer {
    error: Option<String>,
    error_description: Option<String>,
}

struct Cached {
    token: Secret,
    refresh_at: Monotonic,
}

/// What is known about the app's token without asking the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenHealth {
    /// A token is cached and valid.
    Ok,
    /// The last attempt to get one failed (the reason, free of secrets).
    Failing(String),
    /// No token yet, or the cached one ran out and none was fetched since.
    Unknown,
}

/// The outcome of the latest fetch, kept apart from the cache so it can be read without
/// waiting for a fetch in flight.
#[derive(Default)]
struct Outcome {
    valid_until: Option<Monotonic>,
    failed: Option<(Monotonic, String)>,
}

/// Fetches tokens and caches one. Concurrent callers share a single fetch.
pub(crate) struct TokenSource {
    http: reqwest::Client,
    token_url: String,
    scope: String,
    client_id: String,
    credential: MdeCredential,
    cache: tokio::sync::Mutex<Option<Cached>>,
    clock: SharedClock,
    outcome: std::sync::Mutex<Outcome>,
}

impl TokenSource {
    pub(crate) fn new(
        http: reqwest::Client,
        token_url: String,
        scope: String,
        client_id: String,
        credential: MdeCredential,
        clock: SharedClock,
    ) -> Self {
        let cache = tokio::sync::Mutex::new(None);
        Self { http, token_url, scope, client_id, credential, cache, clock, outcome: Default::default() }
    }

    /// A token valid for at least about a minute more: the cached one or a fresh one.
    pub(crate) async fn get(&self) -> Result<Secret, MdeError> {
        let mut cache = self.cache.lock().await;
        self.fill(&mut cache).await
    }

    async fn fill(&self, cache: &mut Option<Cached>) -> Result<Secret, MdeError> {
        if let Some(c) = cache.as_ref().filter(|c| self.clock.monotonic() < c.refresh_at) {
            return Ok(c.token.clone());
        }
        let fetched = self.fetch().await;
        let mut outcome = self.outcome();
        let now = self.clock.monotonic();
        let (token, lifetime) = fetched.inspect_err(|e| outcome.failed = Some((now, e.to_string())))?;
        let refresh_at = now + lifetime.saturating_sub(REFRESH_MARGIN);
        *outcome = Outcome { valid_until: Some(refresh_at), failed: None };
        *cache = Some(Cached { token: token.clone(), refresh_at });
        Ok(token)
    }

    /// Forgets `rejected` (MDE answered 401 to it), unless another caller already replaced it.
    pub(crate) async fn invalidate(&self, rejected: &Secret) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|c| &c.token == rejected) {
            *cache = None;
            self.outcome().valid_until = None;
        }
    }

    fn outcome(&self) -> std::sync::MutexGuard<'_, Outcome> {
        self.outcome.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What is known at `now`, without fetching.
    pub(crate) fn health(&self, now: Monotonic) -> TokenHealth {
        let outcome = self.outcome();
        match (&outcome.failed, outcome.valid_until) {
            (_, Some(until)) if now < until => TokenHealth::Ok,
            (Some((_, why)), _) => TokenHealth::Failing(why.clone()),
            _ => TokenHealth::Unknown,
        }
    }

    /// The token's health, fetching one only when nothing is known (no token yet, or the last
    /// one ran out) or the last failure is at least `recheck` old, and no fetch is under way;
    /// such a fetch gets at most `bound` (running out is a failure too).
    pub(crate) async fn check(&self, bound: Duration, recheck: Duration) -> TokenHealth {
        let now = self.clock.monotonic();
        let due = match self.health(now) {
            TokenHealth::Ok => false,
            TokenHealth::Failing(_) => self.outcome().failed.as_ref().is_some_and(|(at, _)| now - *at >= recheck),
            TokenHealth::Unknown => true,
        };
        if !due {
            return self.health(now);
        }
        // A fetch under way (by the worker or a request) will record its outcome: do not queue.
        let Ok(mut cache) = self.cache.try_lock() else { return self.health(now) };
        if tokio::time::timeout(bound, self.fill(&mut cache)).await.is_err() {
            tracing::warn!(token_url = %self.token_url, ?bound, "the token endpoint did not answer in time");
            self.outcome().failed = Some((
                self.clock.monotonic(),
                format!("the token endpoint did not answer within {}", humantime::format_duration(bound)),
            ));
        }
        self.health(self.clock.monotonic())
    }

    #[tracing::instrument(skip_all, fields(token_url = %self.token_url))]
    async fn fetch(&self) -> Result<(Secret, Duration), MdeError> {
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", self.client_id.clone()),
            ("scope", self.scope.clone()),
        ];
        match &self.credential {
            MdeCredential::ClientSecret(secret) => {
                form.push(("client_secret", secret.expose().to_owned()));
            }
            MdeCredential::Certificate { certificate_pem, private_key_pem, alg } => {
                let now = self.clock.now().unix_ms().div_euclid(1000);
                let assertion =
                    client_assertion(&self.client_id, &self.token_url, certificate_pem, private_key_pem, *alg, now)?;
                form.push(("client_assertion_type", JWT_BEARER.into()));
                form.push(("client_assertion", assertion));
            }
        }
        let answer =
            self.http.post(&self.token_url).form(&form).send().await.map_err(|e| MdeError::from_transport(None, &e))?;
        let status = answer.status().as_u16();
        let retry_after = parse_retry_after(answer.headers());
        let body = answer.bytes().await.map_err(|e| MdeError::from_transport(None, &e))?;
        if !(200..300).contains(&status) {
            let parsed = serde_json::from_slice::<TokenErrorAnswer>(&body).ok();
            let (error, description) = parsed.map_or((None, None), |p| (p.error, p.error_description));
            tracing::warn!(status, error = ?error, "token request refused");
            return Err(MdeError::Token { status, error, description, retry_after });
        }
        let token: TokenAnswer = serde_json::from_slice(&body).map_err(|_| MdeError::Token {
            status,
            error: Some("invalid_token_response".into()),
            description: Some("the token endpoint's answer is not a token".into()),
            retry_after: None,
        })?;
        let seconds = match token.expires_in {
            NumberOrString::Number(n) => n,
            // An unreadable lifetime is treated as "refresh on next use".
            NumberOrString::String(s) => s.trim().parse().unwrap_or(0),
        };
        tracing::debug!(expires_in = seconds, "token acquired");
        Ok((Secret::new(token.access_token), Duration::from_secs(seconds)))
    }
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
