//! What the dev identity provider remembers between requests: authorization codes (single
//! use), refresh tokens (rotated, in families), device codes, the next ID token fault and how
//! many grants succeeded. It lives in the simulator's state, behind its one lock.

use std::collections::HashMap;
use std::time::Duration;

use super::config::{DevUser, IdTokenFault};
use super::scope::Scope;
use crate::clock::Monotonic;

/// How long a spent code or an expired device code is still recognised (to say "used" or
/// "expired" rather than "unknown") before it is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// A person signed in to a client for a scope: what every token issued from it says.
#[derive(Debug, Clone)]
pub(crate) struct SignIn {
    pub client_id: String,
    pub user: DevUser,
    pub scope: Scope,
    /// When the person pressed the button, in Unix seconds on the simulator's clock.
    pub auth_time: i64,
}

/// An authorization code waiting to be redeemed, bound to its client, redirect URI and PKCE
/// challenge.
pub(crate) struct AuthCode {
    pub sign_in: SignIn,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub expires_at: Monotonic,
}

/// What presenting an authorization code found.
pub(crate) enum CodeRedemption {
    /// Valid: the code, and the family its refresh tokens belong to.
    Fresh(Box<AuthCode>, u64),
    Expired,
    /// Redeemed before: refused, and the refresh tokens issued from it are revoked (RFC 6749
    /// §4.1.2).
    Replayed,
    Unknown,
}

/// What presenting a refresh token found.
pub(crate) enum RefreshRedemption {
    Fresh(SignIn, u64),
    /// Rotated out before: refused, and its family's current token revoked, since either the
    /// client or a thief holds a copy (OAuth 2.0 Security BCP §4.14.2).
    Replayed,
    Unknown,
}

struct RefreshGrant {
    sign_in: SignIn,
    family: u64,
}

/// Whether the person has answered a device code yet.
#[derive(Debug, Clone)]
pub(crate) enum DeviceDecision {
    Pending,
    Approved { user: DevUser, auth_time: i64 },
    Denied,
}

/// A device authorization (RFC 8628) in progress.
pub(crate) struct DeviceGrant {
    pub client_id: String,
    pub scope: Scope,
    pub user_code: String,
    pub expires_at: Monotonic,
    pub interval: Duration,
    pub last_poll: Option<Monotonic>,
    pub decision: DeviceDecision,
}

/// The answer to one poll of a device code.
#[derive(Debug)]
pub(crate) enum Poll {
    Pending,
    SlowDown,
    Denied,
    Expired,
    Approved(SignIn),
}

impl DeviceGrant {
    /// One poll at `now`: expired first, then too early (the interval grows by 5 s, RFC 8628
    /// §3.5), then the person's decision. Every poll restarts the interval.
    pub(crate) fn poll(&mut self, now: Monotonic) -> Poll {
        if now >= self.expires_at {
            return Poll::Expired;
        }
        let early = self.last_poll.is_some_and(|last| now.saturating_since(last) < self.interval);
        self.last_poll = Some(now);
        if early {
            self.interval += Duration::from_secs(5);
            return Poll::SlowDown;
        }
        match &self.decision {
            DeviceDecision::Pending => Poll::Pending,
            DeviceDecision::Denied => Poll::Denied,
            DeviceDecision::Approved { user, auth_time } => Poll::Approved(SignIn {
                client_id: self.client_id.clone(),
                user: user.clone(),
                scope: self.scope.clone(),
                auth_time: *auth_time,
            }),
        }
    }
}

/// The identity provider's part of the simulator state.
#[derive(Default)]
pub(crate) struct IdpState {
    codes: HashMap<String, Box<AuthCode>>,
    /// Redeemed codes: their refresh family and when they are forgotten.
    spent_codes: HashMap<String, (u64, Monotonic)>,
    refresh: HashMap<String, RefreshGrant>,
    spent_refresh: HashMap<String, u64>,
    /// By device code.
    pub devices: HashMap<String, DeviceGrant>,
    pub next_fault: Option<IdTokenFault>,
    grants: HashMap<String, usize>,
    next_family: u64,
}

impl IdpState {
    pub(crate) fn insert_code(&mut self, code: String, record: AuthCode, now: Monotonic) {
        self.codes.retain(|_, c| now < c.expires_at + FORGET_AFTER);
        self.spent_codes.retain(|_, (_, forget_at)| now < *forget_at);
        self.codes.insert(code, Box::new(record));
    }

    /// Takes `code` out: whatever the outcome, it never redeems again.
    pub(crate) fn redeem_code(&mut self, code: &str, now: Monotonic) -> CodeRedemption {
        let Some(record) = self.codes.remove(code) else {
            return match self.spent_codes.get(code) {
                Some(&(family, _)) => {
                    self.revoke_family(family);
                    CodeRedemption::Replayed
                }
                None => CodeRedemption::Unknown,
            };
        };
        let family = self.new_family();
        self.spent_codes.insert(code.to_owned(), (family, record.expires_at + FORGET_AFTER));
        if now >= record.expires_at { CodeRedemption::Expired } else { CodeRedemption::Fresh(record, family) }
    }

    pub(crate) fn new_family(&mut self) -> u64 {
        self.next_family += 1;
        self.next_family
    }

    pub(crate) fn store_refresh(&mut self, token: String, sign_in: SignIn, family: u64) {
        self.refresh.insert(token, RefreshGrant { sign_in, family });
    }

    /// Takes `token` out: a refresh token redeems once (rotation).
    pub(crate) fn redeem_refresh(&mut self, token: &str) -> RefreshRedemption {
        if let Some(grant) = self.refresh.remove(token) {
            self.spent_refresh.insert(token.to_owned(), grant.family);
            return RefreshRedemption::Fresh(grant.sign_in, grant.family);
        }
        match self.spent_refresh.get(token) {
            Some(&family) => {
                self.revoke_family(family);
                RefreshRedemption::Replayed
            }
            None => RefreshRedemption::Unknown,
        }
    }

    /// Ends every refresh token of `family`; presenting one later counts as a replay.
    fn revoke_family(&mut self, family: u64) {
        let revoked: Vec<String> =
            self.refresh.iter().filter(|(_, g)| g.family == family).map(|(t, _)| t.clone()).collect();
        for token in revoked {
            self.refresh.remove(&token);
            self.spent_refresh.insert(token, family);
        }
    }

    pub(crate) fn insert_device(&mut self, device_code: String, grant: DeviceGrant, now: Monotonic) {
        self.devices.retain(|_, d| now < d.expires_at + FORGET_AFTER);
        self.devices.insert(device_code, grant);
    }

    /// Polls a device code; an approved one is redeemed by this poll and gone afterwards.
    pub(crate) fn poll_device(&mut self, device_code: &str, now: Monotonic) -> Option<Poll> {
        let poll = self.devices.get_mut(device_code)?.poll(now);
        if matches!(poll, Poll::Approved(_)) {
            self.devices.remove(device_code);
        }
        Some(poll)
    }

    pub(crate) fn count_grant(&mut self, grant_type: &str) {
        *self.grants.entry(grant_type.to_owned()).or_default() += 1;
    }

    pub(crate) fn grants(&self, grant_type: &str) -> usize {
        self.grants.get(grant_type).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mde::simulator::idp::config::{DevIdpConfig, dev_users};

    fn device(interval: u64, decision: DeviceDecision) -> DeviceGrant {
        DeviceGrant {
            client_id: "app".into(),
            scope: Scope::parse(Some("openid"), &DevIdpConfig::default()).unwrap(),
            user_code: "BCDF-GHJK".into(),
            expires_at: at(900),
            interval: Duration::from_secs(interval),
            last_poll: None,
            decision,
        }
    }

    fn at(secs: u64) -> Monotonic {
        Monotonic::after_origin(Duration::from_secs(secs))
    }

    #[test]
    fn polling_within_the_interval_slows_down_by_five_seconds_each_time() {
        let mut grant = device(5, DeviceDecision::Pending);
        assert!(matches!(grant.poll(at(10)), Poll::Pending));
        assert!(matches!(grant.poll(at(14)), Poll::SlowDown));
        assert_eq!(grant.interval, Duration::from_secs(10));
        assert!(matches!(grant.poll(at(23)), Poll::SlowDown));
        assert_eq!(grant.interval, Duration::from_secs(15));
        assert!(matches!(grant.poll(at(38)), Poll::Pending));
    }

    #[test]
    fn an_approved_device_code_redeems_once_and_expiry_ends_a_pending_one() {
        let bob = dev_users().swap_remove(1);
        let mut state = IdpState::default();
        state.insert_device("d".into(), device(0, DeviceDecision::Approved { user: bob, auth_time: 7 }), at(0));
        let first = state.poll_device("d", at(1));
        assert!(matches!(first, Some(Poll::Approved(s)) if s.user.name == "bob" && s.auth_time == 7));
        assert!(state.poll_device("d", at(1)).is_none(), "an approved device code redeems once");
        assert!(matches!(device(0, DeviceDecision::Pending).poll(at(900)), Poll::Expired));
        assert!(matches!(device(0, DeviceDecision::Denied).poll(at(2)), Poll::Denied));
    }

    #[test]
    fn a_code_redeems_once_and_its_replay_revokes_the_refresh_tokens_it_led_to() {
        let mut state = IdpState::default();
        let sign_in = SignIn {
            client_id: "app".into(),
            user: dev_users().remove(0),
            scope: Scope::parse(Some("openid offline_access"), &DevIdpConfig::default()).unwrap(),
            auth_time: 1,
        };
        let code = AuthCode {
            sign_in: sign_in.clone(),
            redirect_uri: "http://127.0.0.1:1/cb".into(),
            code_challenge: "x".into(),
            nonce: None,
            expires_at: at(600),
        };
        state.insert_code("c".into(), code, at(0));
        let CodeRedemption::Fresh(_, family) = state.redeem_code("c", at(1)) else { panic!("fresh first") };
        state.store_refresh("r1".into(), sign_in, family);
        assert!(matches!(state.redeem_code("c", at(2)), CodeRedemption::Replayed));
        assert!(matches!(state.redeem_refresh("r1"), RefreshRedemption::Replayed));
        assert!(matches!(state.redeem_code("other", at(2)), CodeRedemption::Unknown));
    }
}
