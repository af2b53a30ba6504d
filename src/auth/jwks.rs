//! A cached JSON Web Key Set: fetched on first use, refreshed when older than `max_age`, and
//! refetched for an unknown `kid` at most once per `min_refresh` (so junk tokens cannot make
//! dualkey hammer the identity provider).

use super::AuthError;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

pub struct JwksCache {
    http: reqwest::Client,
    url: String,
    min_refresh: Duration,
    max_age: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

impl JwksCache {
    pub fn new(http: reqwest::Client, url: String, min_refresh: Duration, max_age: Duration) -> Self {
        Self { http, url, min_refresh, max_age, state: Mutex::new(State::default()) }
    }

    /// The RSA key with this `kid`.
    pub async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        let mut state = self.state.lock().await;
        let stale = state.fetched_at.is_none_or(|t| t.elapsed() >= self.max_age);
        let unknown_and_may_refresh =
            !state.keys.contains_key(kid) && state.fetched_at.is_none_or(|t| t.elapsed() >= self.min_refresh);
        if stale || unknown_and_may_refresh {
            match self.fetch().await {
                Ok(keys) => {
                    state.keys = keys;
                    state.fetched_at = Some(Instant::now());
                }
                // Keep serving the keys we have; only fail when we have nothing to check with.
                Err(e) if state.keys.is_empty() => {
                    state.fetched_at = Some(Instant::now());
                    return Err(e);
                }
                Err(e) => tracing::warn!(error = %e, "JWKS refresh failed; using cached keys"),
            }
        }
        state.keys.get(kid).cloned().ok_or_else(|| AuthError::Invalid(format!("unknown signing key id `{kid}`")))
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, AuthError> {
        let unavailable = |e: reqwest::Error| AuthError::Unavailable(format!("fetching JWKS: {e}"));
        let set: JwkSet = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(unavailable)?
            .error_for_status()
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            // Only RSA keys with a kid; symmetric keys in a JWKS are never accepted.
            let (Some(kid), AlgorithmParameters::RSA(_)) = (&jwk.common.key_id, &jwk.algorithm) else { continue };
            match DecodingKey::from_jwk(jwk) {
                Ok(k) => {
                    keys.insert(kid.clone(), k);
                }
                Err(e) => tracing::warn!(kid = %crate::logsafe::untrusted(kid), error = %e, "skipping unusable JWK"),
            }
        }
        tracing::info!(keys = keys.len(), "fetched JWKS");
        Ok(keys)
    }
}
