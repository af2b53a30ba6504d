//! What the client saw of MDE: every call it sent, by API and answer, and when MDE last
//! answered or could not be reached. Read by `/metrics` (`dualkey_mde_calls_total`,
//! `dualkey_mde_throttled_total`) and `/readyz` (`mde_api`).

use super::rate::Api;
use crate::clock::Timestamp;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// The answer of one call: an HTTP status, or no answer at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CallCode {
    Status(u16),
    /// Timed out, refused or cut before a status arrived.
    Transport,
}

impl CallCode {
    /// As `dualkey_mde_calls_total` labels it: `201`, `429`, `transport_error`.
    pub fn label(self) -> String {
        match self {
            CallCode::Status(s) => s.to_string(),
            CallCode::Transport => "transport_error".into(),
        }
    }
}

/// The counts of one client since it was built. Each replica counts its own calls.
#[derive(Debug, Default)]
pub struct CallStats {
    inner: Mutex<Seen>,
}

#[derive(Debug, Default, Clone)]
struct Seen {
    calls: BTreeMap<(Api, CallCode), u64>,
    last_answer: Option<Timestamp>,
    last_unreachable: Option<Timestamp>,
}

/// Whether MDE's API answers, from the client's last calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reachability {
    /// The last call that got an HTTP answer (any status: MDE was there).
    pub last_answer: Option<Timestamp>,
    /// The last call that got none.
    pub last_unreachable: Option<Timestamp>,
}

impl Reachability {
    /// `reachable` when the last call was answered, `unreachable` when it was not,
    /// `not_contacted` before the first call.
    pub fn status(&self) -> &'static str {
        match (self.last_answer, self.last_unreachable) {
            (None, None) => "not_contacted",
            (Some(a), Some(u)) if u > a => "unreachable",
            (None, Some(_)) => "unreachable",
            _ => "reachable",
        }
    }
}

impl CallStats {
    /// Counts one call of `api` that ended with `code` at `at`.
    pub fn record(&self, api: Api, code: CallCode, at: Timestamp) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *s.calls.entry((api, code)).or_default() += 1;
        match code {
            CallCode::Status(_) => s.last_answer = Some(at),
            CallCode::Transport => s.last_unreachable = Some(at),
        }
    }

    /// Calls by API and answer.
    pub fn calls(&self) -> BTreeMap<(Api, CallCode), u64> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).calls.clone()
    }

    /// Calls of `api` that MDE answered 429.
    pub fn throttled(&self, api: Api) -> u64 {
        let s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.calls.get(&(api, CallCode::Status(429))).copied().unwrap_or(0)
    }

    /// When MDE last answered, and when it last could not be reached.
    pub fn reachability(&self) -> Reachability {
        let s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Reachability { last_answer: s.last_answer, last_unreachable: s.last_unreachable }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_call_says_whether_mde_is_reachable() {
        let stats = CallStats::default();
        assert_eq!(stats.reachability().status(), "not_contacted");
        stats.record(Api::Unisolate, CallCode::Transport, Timestamp::from_unix_ms(1));
        assert_eq!(stats.reachability().status(), "unreachable");
        stats.record(Api::Unisolate, CallCode::Status(429), Timestamp::from_unix_ms(2));
        assert_eq!(stats.reachability().status(), "reachable");
        assert_eq!(stats.throttled(Api::Unisolate), 1);
        assert_eq!(stats.throttled(Api::GetAction), 0);
        assert_eq!(stats.calls().values().sum::<u64>(), 2);
    }
}
