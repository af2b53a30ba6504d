//! The OAuth 2.0 device authorization grant (RFC 8628): ask for a code, tell the person where to
//! enter it, and poll the token endpoint as §3.5 says until they have signed in.
//!
//! [`PollSchedule`] is the pure part (when to poll next, what each answer means), with time
//! passed in as "how long since the code was issued"; [`sign_in`] is the shell that sleeps on
//! the clock and talks HTTP.

use super::ClientError;
use super::credentials::Token;
use super::oidc::{DEVICE_CODE_GRANT, OAuthError, Provider, TokenAnswer, TokenOutcome, check_transport, token_request};
use super::output::clean;
use crate::clock::Clock;
use serde::Deserialize;
use std::io::Write;
use std::time::Duration;

/// The wait between polls when the provider names none (RFC 8628 §3.2).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// How much longer every later poll waits after a `slow_down` (§3.5).
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// The shortest wait between polls, whatever the provider says: a provider that asks for 0
/// (the dev IdP in tests) is polled quickly but never in a busy loop.
const MIN_GAP: Duration = Duration::from_millis(100);

/// The device authorization response (§3.2). Entra's older endpoint says `verification_url`.
#[derive(Deserialize)]
struct DeviceAuthorization {
    device_code: Token,
    user_code: String,
    #[serde(alias = "verification_url")]
    verification_uri: String,
    #[serde(default)]
    verification_uri_complete: Option<String>,
    #[serde(deserialize_with = "crate::lenient::lenient_u32")]
    expires_in: u32,
    #[serde(default, deserialize_with = "crate::lenient::lenient_opt_u32")]
    interval: Option<u32>,
}

/// When to poll, counted from when the code was issued.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PollSchedule {
    interval: Duration,
    expires_after: Duration,
}

impl PollSchedule {
    /// The schedule for a code valid `expires_in` seconds, polled every `interval` seconds
    /// (5 when the provider says nothing).
    pub(crate) fn new(interval: Option<u32>, expires_in: u32) -> Self {
        Self {
            interval: interval.map_or(DEFAULT_INTERVAL, |s| Duration::from_secs(s.into())),
            expires_after: Duration::from_secs(expires_in.into()),
        }
    }

    /// When to poll after the poll made at `last` (zero: when the code was issued), or `None`
    /// when the code would have expired by then.
    pub(crate) fn next_after(&self, last: Duration) -> Option<Duration> {
        let at = last + self.interval.max(MIN_GAP);
        (at < self.expires_after).then_some(at)
    }

    /// What a refusal from the token endpoint means: keep polling (perhaps more slowly), or stop
    /// with the reason the person should read.
    pub(crate) fn on_refusal(&mut self, refusal: &OAuthError) -> Result<(), ClientError> {
        match refusal.error.as_str() {
            "authorization_pending" => Ok(()),
            "slow_down" => {
                self.interval += SLOW_DOWN_STEP;
                Ok(())
            }
            "access_denied" => Err(ClientError::other("sign-in was declined at the identity provider (access_denied)")),
            "expired_token" => Err(ClientError::other(
                "the code expired before sign-in was finished (expired_token): run `dualkey login` again",
            )),
            _ => Err(ClientError::other(format!("the identity provider refused the sign-in ({refusal})"))),
        }
    }
}

/// Runs the device flow for `scope` at `provider`: prints the code and URL to `tell` (stderr:
/// stdout stays clean for `--output json`), polls until the person signs in, and returns the
/// tokens.
pub(crate) async fn sign_in(
    http: &reqwest::Client,
    clock: &dyn Clock,
    provider: &Provider,
    client_id: &str,
    scope: &str,
    tell: &mut dyn Write,
) -> Result<TokenAnswer, ClientError> {
    let endpoint = provider.device_authorization_endpoint.as_deref().ok_or_else(|| {
        ClientError::other(format!(
            "the identity provider {} has no device_authorization_endpoint: it cannot sign in a terminal",
            provider.issuer
        ))
    })?;
    check_transport("the device authorization endpoint", endpoint)?;
    let r = http
        .post(endpoint)
        .form(&[("client_id", client_id), ("scope", scope)])
        .send()
        .await
        .map_err(|e| super::oidc::unreachable_error(endpoint, e))?;
    let status = r.status();
    let body = r.bytes().await.map_err(|e| super::oidc::unreachable_error(endpoint, e))?;
    if !status.is_success() {
        let why = serde_json::from_slice::<OAuthError>(&body).map_or_else(|_| status.to_string(), |e| e.to_string());
        return Err(ClientError::other(format!("the identity provider refused to issue a device code ({why})")));
    }
    let auth: DeviceAuthorization = serde_json::from_slice(&body)
        .map_err(|e| ClientError::other(format!("the device authorization answer cannot be read: {e}")))?;
    let started = clock.monotonic();
    // A closed stderr must not stop the sign-in; the person may have the code another way.
    let (uri, code) = (clean(&auth.verification_uri), clean(&auth.user_code));
    let _ = writeln!(tell, "To sign in, open {uri} and enter the code {code}");
    if let Some(complete) = &auth.verification_uri_complete {
        let _ = writeln!(tell, "  (or open {})", clean(complete));
    }
    let _ = writeln!(
        tell,
        "Waiting for you to sign in (the code is valid for {} minutes)...",
        auth.expires_in.div_ceil(60)
    );

    let mut schedule = PollSchedule::new(auth.interval, auth.expires_in);
    let mut last = Duration::ZERO;
    let form =
        [("grant_type", DEVICE_CODE_GRANT), ("device_code", auth.device_code.expose()), ("client_id", client_id)];
    loop {
        let Some(at) = schedule.next_after(last) else {
            return Err(ClientError::other("the code expired before sign-in was finished: run `dualkey login` again"));
        };
        clock.sleep_until(started + at).await;
        last = clock.monotonic().saturating_since(started);
        match token_request(http, &provider.token_endpoint, &form).await? {
            TokenOutcome::Issued(tokens) => return Ok(tokens),
            TokenOutcome::Refused(refusal) => schedule.on_refusal(&refusal)?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(error: &str) -> OAuthError {
        OAuthError { error: error.into(), error_description: Some("AADSTS70016: pending".into()) }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn polls_come_one_interval_apart_until_the_code_expires() {
        let s = PollSchedule::new(Some(5), 12);
        assert_eq!(s.next_after(Duration::ZERO), Some(S(5)), "the first poll waits one interval too");
        assert_eq!(s.next_after(S(5)), Some(S(10)));
        assert_eq!(s.next_after(Duration::from_millis(10_300)), None, "no poll after the code has expired");
        assert_eq!(PollSchedule::new(None, 900).next_after(S(0)), Some(S(5)), "5 s when no interval is given");
    }

    #[test]
    fn slow_down_adds_five_seconds_to_every_later_wait() {
        let mut s = PollSchedule::new(Some(5), 900);
        s.on_refusal(&refusal("slow_down")).unwrap();
        assert_eq!(s.next_after(S(5)), Some(S(15)));
        s.on_refusal(&refusal("slow_down")).unwrap();
        assert_eq!(s.next_after(S(15)), Some(S(30)));
        s.on_refusal(&refusal("authorization_pending")).unwrap();
        assert_eq!(s.next_after(S(30)), Some(S(45)), "pending keeps the slower pace");
    }

    #[test]
    fn a_zero_interval_is_polled_quickly_but_not_in_a_busy_loop() {
        let mut s = PollSchedule::new(Some(0), 900);
        assert_eq!(s.next_after(S(1)), Some(S(1) + MIN_GAP));
        s.on_refusal(&refusal("slow_down")).unwrap();
        assert_eq!(s.next_after(S(1)), Some(S(6)));
    }

    #[test]
    fn denial_expiry_and_other_errors_stop_polling_with_a_clear_reason() {
        let mut s = PollSchedule::new(Some(5), 900);
        let stop = |s: &mut PollSchedule, e: &str| s.on_refusal(&refusal(e)).unwrap_err().to_string();
        assert!(stop(&mut s, "access_denied").contains("declined"));
        assert!(stop(&mut s, "expired_token").contains("expired"));
        let other = stop(&mut s, "invalid_client");
        assert!(other.contains("invalid_client: AADSTS70016"), "{other}");
    }
}
