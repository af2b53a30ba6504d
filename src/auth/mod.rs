//! Caller identities: bearer JWT verification (HS256 with a shared secret, RS256 against a
//! JWKS) and the [`Principal`] extractor.

mod jwks;
mod mint;
pub(crate) mod oidc;
mod principal;

pub(crate) use jwks::JwksCache;
pub(crate) use mint::mint_hs256;
pub(crate) use principal::{Principal, SignIn};

use crate::clock::SharedClock;
use crate::settings::AuthSettings;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::Value;

/// Why a bearer token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    /// Bad signature, algorithm, issuer, audience, times or claims. The reason is for logs only.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The token is genuine but names its caller (principal or isolator claim) with text that
    /// could pass for someone else: empty, whitespace at either end, control or format characters.
    #[error("invalid principal: {0}")]
    InvalidPrincipal(String),
    /// The key set could not be fetched, so the token cannot be checked either way.
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
}

/// Verifies tokens as the `[auth]` settings say.
pub struct Verifier {
    hs256: Option<DecodingKey>,
    jwks: Option<JwksCache>,
    issuer: String,
    audience: String,
    leeway_secs: u64,
    principal_claim: String,
    roles_claim: String,
    upn_claims: [String; 2],
    /// `exp` and `nbf` are checked against this clock, the one every other time in dualkey
    /// comes from (tests move it; jsonwebtoken would read the system time).
    clock: SharedClock,
}

impl Verifier {
    /// `clock` paces the JWKS cache (its age and the pause after a failed fetch).
    pub fn new(settings: &AuthSettings, clock: SharedClock) -> Result<Self, anyhow::Error> {
        let timeout = settings.jwks_timeout.get();
        let http = reqwest::Client::builder().timeout(timeout).connect_timeout(timeout).build()?;
        Ok(Self {
            hs256: settings
                .hs256_secret
                .as_ref()
                .map(|s| DecodingKey::from_secret(s.expose().as_bytes()))
                .transpose()?,
            jwks: settings.jwks_url.as_ref().map(|url| {
                let (min_refresh, max_age) = (settings.jwks_min_refresh.get(), settings.jwks_max_age.get());
                JwksCache::new(http, url.clone(), min_refresh, max_age, clock.clone())
            }),
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            leeway_secs: settings.leeway.get().as_secs(),
            principal_claim: settings.principal_claim.clone(),
            roles_claim: settings.roles_claim.clone(),
            upn_claims: [settings.isolator_claim.clone(), "preferred_username".into()],
            clock,
        })
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.leeway_secs;
        // Times are checked by `check_times`, on dualkey's clock.
        v.validate_exp = false;
        v.validate_nbf = false;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v
    }

    /// Checks the signature with the key the configuration enables for the token's `alg` (no
    /// other algorithm is ever tried), then `exp`, `nbf`, `iss`, `aud`, and extracts the caller.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = decode_header(token).map_err(|e| AuthError::Invalid(format!("malformed header: {e}")))?;
        let key = match header.alg {
            Algorithm::HS256 => match &self.hs256 {
                Some(k) => k.clone(),
                None => return Err(AuthError::Invalid("HS256 is not enabled".into())),
            },
            Algorithm::RS256 => match &self.jwks {
                Some(cache) => {
                    let kid =
                        header.kid.as_deref().ok_or_else(|| AuthError::Invalid("RS256 token without kid".into()))?;
                    cache.key(kid).await?
                }
                None => return Err(AuthError::Invalid("RS256 is not enabled".into())),
            },
            other => return Err(AuthError::Invalid(format!("algorithm {other:?} is not accepted"))),
        };
        let data = decode::<Value>(token, &key, &self.validation(header.alg))
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        check_times(&data.claims, self.clock.now().unix_ms() / 1000, self.leeway_secs)?;
        self.principal(&data.claims)
    }

    /// The caller named by verified `claims` (an access token's, or a console ID token's: one
    /// person is one principal in the API, the console and the terminal client).
    pub(crate) fn principal(&self, claims: &Value) -> Result<Principal, AuthError> {
        let id = claims
            .get(&self.principal_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::Invalid(format!("claim `{}` missing or not a string", self.principal_claim)))?;
        let id = identity(&self.principal_claim, id)?;
        let roles = match claims.get(&self.roles_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            Some(_) => return Err(AuthError::Invalid(format!("claim `{}` is not an array", self.roles_claim))),
        };
        let upn = self
            .upn_claims
            .iter()
            .find_map(|c| claims.get(c.as_str()).and_then(Value::as_str).map(|v| (c, v)))
            .map(|(claim, v)| identity(claim, v))
            .transpose()?;
        Ok(Principal::new(id, roles, upn))
    }
}

/// `exp` (required) and `nbf` (when present) against `now` (Unix seconds), with `leeway`.
pub(crate) fn check_times(claims: &Value, now: i64, leeway: u64) -> Result<(), AuthError> {
    let leeway = i64::try_from(leeway).unwrap_or(i64::MAX);
    let exp = claims.get("exp").and_then(Value::as_i64).ok_or_else(|| AuthError::Invalid("no numeric exp".into()))?;
    if now > exp.saturating_add(leeway) {
        return Err(AuthError::Invalid("token expired".into()));
    }
    match claims.get("nbf") {
        None => Ok(()),
        Some(nbf) => match nbf.as_i64() {
            Some(nbf) if now.saturating_add(leeway) >= nbf => Ok(()),
            Some(_) => Err(AuthError::Invalid("token not yet valid (nbf)".into())),
            None => Err(AuthError::Invalid("nbf is not a number".into())),
        },
    }
}

/// An identity claim as a [`Principal`] holds it: refused when empty, with whitespace at either
/// end, or holding control or format characters, so no identity can hide a difference a reader
/// cannot see. (Look-alikes that pass, `ALICE` or a Cyrillic а, are one person by
/// [`crate::domain::same_person`].)
fn identity(claim: &str, value: &str) -> Result<String, AuthError> {
    let refuse = |why: &str| Err(AuthError::InvalidPrincipal(format!("claim `{claim}` {why}")));
    if value.is_empty() {
        return refuse("is empty");
    }
    if value.trim() != value {
        return refuse("has whitespace at an end");
    }
    if value.chars().any(crate::domain::is_hidden_control) {
        return refuse("holds control or format characters");
    }
    Ok(value.to_string())
}
