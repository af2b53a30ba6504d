//! A cached JSON Web Key Set. A token whose `kid` is cached is verified at once, never after a
//! fetch: a stale set (older than `max_age`) is refreshed in the background. Only a token whose
//! key is not cached waits, and then only for the one fetch in flight. One fetch at a time, each
//! bounded by the HTTP client's timeout, and at most one attempt per `min_refresh`, failed ones
//! included (so junk tokens or a hanging identity provider cannot make every request fetch).

use super::AuthError;
use crate::clock::{Monotonic, SharedClock};
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

pub(crate) struct JwksCache {
    inner: Arc<Inner>,
}

struct Inner {
    /// Its timeout bounds a fetch (`auth.jwks_timeout`).
    http: reqwest::Client,
    url: String,
    limits: Limits,
    clock: SharedClock,
    /// Never held across an `.await`.
    state: Mutex<State>,
    /// Bumped each time a fetch ends, successful or not; waiters watch it.
    fetches_done: watch::Sender<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    min_refresh: Duration,
    max_age: Duration,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, DecodingKey>,
    /// The last successful fetch.
    fetched_at: Option<Monotonic>,
    /// When the last fetch started, successful or not.
    attempted_at: Option<Monotonic>,
    /// Why the last fetch failed; cleared by a successful one.
    last_error: Option<String>,
    in_flight: bool,
}

/// What a verification does, decided from the cache alone.
enum Plan {
    /// Answer now (with the cached key, or why there is none).
    Answer(Result<DecodingKey, AuthError>),
    /// Wait for the fetch in flight, then answer from the cache.
    Wait,
}

impl State {
    /// What to do for `kid` at `now`, and whether to start a fetch. A cached key always
    /// answers at once; a missing one waits for a fetch when one is running or may start.
    fn plan(&self, kid: &str, now: Monotonic, limits: Limits) -> (Plan, bool) {
        let may_fetch = !self.in_flight && self.attempted_at.is_none_or(|t| now - t >= limits.min_refresh);
        if let Some(key) = self.keys.get(kid) {
            let stale = self.fetched_at.is_none_or(|t| now - t >= limits.max_age);
            return (Plan::Answer(Ok(key.clone())), stale && may_fetch);
        }
        if self.in_flight || may_fetch {
            return (Plan::Wait, may_fetch);
        }
        (Plan::Answer(Err(self.no_key(kid))), false)
    }

    /// The answer once no fetch can help: the key, or why not.
    fn answer(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        self.keys.get(kid).cloned().ok_or_else(|| self.no_key(kid))
    }

    fn no_key(&self, kid: &str) -> AuthError {
        match &self.last_error {
            // Without any key the token cannot be checked either way: an outage, not a 401.
            Some(e) if self.keys.is_empty() => AuthError::Unavailable(e.clone()),
            _ => AuthError::Invalid(format!("unknown signing key id `{kid}`")),
        }
    }
}

impl JwksCache {
    /// `http` must carry the fetch timeout; `clock` measures the key set's age and the pause
    /// after a failed fetch.
    pub(crate) fn new(
        http: reqwest::Client,
        url: String,
        min_refresh: Duration,
        max_age: Duration,
        clock: SharedClock,
    ) -> Self {
        let (fetches_done, _) = watch::channel(0);
        let inner = Inner {
            http,
            url,
            limits: Limits { min_refresh, max_age },
            clock,
            state: Mutex::new(State::default()),
            fetches_done,
        };
        Self { inner: Arc::new(inner) }
    }

    /// The RSA key with this `kid`.
    pub(crate) async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        let mut done = {
            let mut state = self.inner.lock();
            let now = self.inner.clock.monotonic();
            let (plan, fetch) = state.plan(kid, now, self.inner.limits);
            // Subscribed under the lock, so the end of a fetch running now cannot be missed.
            let done = self.inner.fetches_done.subscribe();
            if fetch {
                state.in_flight = true;
                state.attempted_at = Some(now);
                drop(state);
                // Its own task: it finishes (and records its outcome) even if this request is
                // dropped, and a request holding a cached key does not wait for it.
                tokio::spawn(Inner::refresh(self.inner.clone()));
            }
            match plan {
                Plan::Answer(answer) => return answer,
                Plan::Wait => done,
            }
        };
        // The fetch always ends (the HTTP timeout bounds it), and its guard always signals.
        let _ = done.changed().await;
        self.inner.lock().answer(kid)
    }
}

/// Ends a fetch: clears `in_flight` and wakes the waiters, also if the fetch task is dropped.
struct FetchGuard(Arc<Inner>);

impl Drop for FetchGuard {
    fn drop(&mut self) {
        self.0.lock().in_flight = false;
        self.0.fetches_done.send_modify(|n| *n += 1);
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn refresh(self: Arc<Self>) {
        let _guard = FetchGuard(self.clone());
        let fetched = self.fetch().await;
        let mut state = self.lock();
        match fetched {
            Ok(keys) => {
                state.keys = keys;
                state.fetched_at = Some(self.clock.monotonic());
                state.last_error = None;
            }
            Err(e) => {
                // Keep serving the keys we have; the failure is remembered for `min_refresh`.
                tracing::warn!(error = %e, cached_keys = state.keys.len(), "JWKS fetch failed");
                state.last_error = Some(e);
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, String> {
        let unavailable = |e: reqwest::Error| format!("fetching JWKS: {e}");
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

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { min_refresh: Duration::from_secs(5), max_age: Duration::from_secs(3600) };

    fn key() -> DecodingKey {
        DecodingKey::from_secret(b"not an rsa key, but the plan does not look inside").unwrap()
    }

    fn cached(at: Monotonic) -> State {
        State {
            keys: HashMap::from([("k1".to_string(), key())]),
            fetched_at: Some(at),
            attempted_at: Some(at),
            ..State::default()
        }
    }

    fn describe((plan, fetch): (Plan, bool)) -> (&'static str, bool) {
        let what = match plan {
            Plan::Answer(Ok(_)) => "key",
            Plan::Answer(Err(AuthError::Unavailable(_))) => "unavailable",
            Plan::Answer(Err(_)) => "invalid",
            Plan::Wait => "wait",
        };
        (what, fetch)
    }

    #[test]
    fn a_cached_key_answers_at_once_whatever_the_fetch_state() {
        let t0 = Monotonic::ORIGIN;
        let fresh = cached(t0);
        assert_eq!(describe(fresh.plan("k1", t0 + Duration::from_secs(1), LIMITS)), ("key", false));
        // Stale: answer with it and start a background refresh.
        let late = t0 + Duration::from_secs(3601);
        assert_eq!(describe(fresh.plan("k1", late, LIMITS)), ("key", true));
        // Stale with a refresh running, or one failed a moment ago: still the cached key, no fetch.
        let running = State { in_flight: true, ..cached(t0) };
        assert_eq!(describe(running.plan("k1", late, LIMITS)), ("key", false));
        let failed = State { attempted_at: Some(late), last_error: Some("hangs".into()), ..cached(t0) };
        assert_eq!(describe(failed.plan("k1", late + Duration::from_secs(1), LIMITS)), ("key", false));
    }

    #[test]
    fn a_missing_key_waits_for_one_fetch_and_a_failure_is_remembered_for_min_refresh() {
        let t0 = Monotonic::ORIGIN;
        assert_eq!(describe(State::default().plan("k1", t0, LIMITS)), ("wait", true));
        let running = State { in_flight: true, attempted_at: Some(t0), ..State::default() };
        assert_eq!(describe(running.plan("k1", t0, LIMITS)), ("wait", false));
        let failed = State { attempted_at: Some(t0), last_error: Some("timed out".into()), ..State::default() };
        assert_eq!(describe(failed.plan("k1", t0 + Duration::from_secs(4), LIMITS)), ("unavailable", false));
        assert_eq!(describe(failed.plan("k1", t0 + Duration::from_secs(5), LIMITS)), ("wait", true));
        // An unknown kid next to good keys is the token's fault, refetched once per min_refresh.
        assert_eq!(describe(cached(t0).plan("k2", t0 + Duration::from_secs(1), LIMITS)), ("invalid", false));
        assert_eq!(describe(cached(t0).plan("k2", t0 + Duration::from_secs(5), LIMITS)), ("wait", true));
    }
}
