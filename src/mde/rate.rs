//! Rolling-window rate limiting: never more than N calls in any rolling minute nor M in any
//! rolling hour, per MDE API.
//!
//! [`RollingWindow`] is the pure core: it takes `now` as an argument, so tests check the window
//! math without sleeping. [`RateLimiter`](super::RateLimiter) wraps it for async callers, and
//! the [`Ledger`](super::Ledger) applies the same [`Limits`] to every replica's calls at once.

use std::collections::VecDeque;
use std::time::Duration;

use crate::clock::Monotonic;

/// One MDE API with its own rate budget ("Rate limitations for this API are 100 calls per
/// minute and 1500 calls per hour", stated separately on each API page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Api {
    Unisolate,
    Isolate,
    GetAction,
    ListActions,
    GetMachine,
    CancelAction,
    /// `GET /api/machines` ("List machines").
    ListMachines,
}

impl Api {
    /// Every API, for building one limiter each.
    pub const ALL: [Api; 7] = [
        Api::Unisolate,
        Api::Isolate,
        Api::GetAction,
        Api::ListActions,
        Api::GetMachine,
        Api::CancelAction,
        Api::ListMachines,
    ];

    /// The API's name as the shared budget stores it (`mde_calls.api`, `mde_pauses.api`): fixed,
    /// since every replica must spell it alike.
    pub fn name(self) -> &'static str {
        match self {
            Api::Unisolate => "Unisolate",
            Api::Isolate => "Isolate",
            Api::GetAction => "GetAction",
            Api::ListActions => "ListActions",
            Api::GetMachine => "GetMachine",
            Api::CancelAction => "CancelAction",
            Api::ListMachines => "ListMachines",
        }
    }
}

/// How much of an API's budget a caller may use. The worker's sends run as a backlog at the
/// limit and share the read APIs (listing actions, reading a device) with re-isolations and
/// with the API's own requests; a backlog that took every call of a window would hold those up
/// for up to a minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// The whole window.
    Full,
    /// The window less a tenth of each limit (rounded down), which stays free for `Full` callers.
    Backlog,
}

impl Share {
    fn of(self, limit: usize) -> usize {
        match self {
            Share::Full => limit,
            Share::Backlog => limit - limit / 10,
        }
    }
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// One API's budget: at most `per_minute` calls in any rolling minute and `per_hour` in any
/// rolling hour, both windows widened by `slack`. A call at `t` occupies `[t, t + minute())` and
/// `[t, t + hour())`. What the local window and the shared ledger both enforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    per_minute: usize,
    per_hour: usize,
    slack: Duration,
}

impl Limits {
    /// `per_minute` and `per_hour` calls (each at least 1), no slack.
    pub fn new(per_minute: u32, per_hour: u32) -> Self {
        Self { per_minute: per_minute.max(1) as usize, per_hour: per_hour.max(1) as usize, slack: Duration::ZERO }
    }

    /// Both windows widened by `slack`.
    pub fn with_slack(self, slack: Duration) -> Self {
        Self { slack, ..self }
    }

    /// How long a call counts against the minute's limit.
    pub fn minute(self) -> Duration {
        MINUTE + self.slack
    }

    /// How long a call counts against the hour's limit.
    pub fn hour(self) -> Duration {
        HOUR + self.slack
    }

    /// How many calls a caller with `share` may have in one minute window.
    pub fn per_minute(self, share: Share) -> usize {
        share.of(self.per_minute)
    }

    /// How many calls a caller with `share` may have in one hour window.
    pub fn per_hour(self, share: Share) -> usize {
        share.of(self.per_hour)
    }
}

/// An exact sliding log of call times, enforcing [`Limits`]. `slack` widens both windows, to
/// absorb the latency between our clock and MDE's.
#[derive(Debug, Clone)]
pub struct RollingWindow {
    limits: Limits,
    log: VecDeque<Monotonic>,
    blocked_until: Option<Monotonic>,
}

impl RollingWindow {
    /// A window allowing `per_minute` and `per_hour` calls (each at least 1).
    pub fn new(per_minute: u32, per_hour: u32) -> Self {
        Self { limits: Limits::new(per_minute, per_hour), log: VecDeque::new(), blocked_until: None }
    }

    /// Widens both windows by `slack`.
    pub fn with_slack(mut self, slack: Duration) -> Self {
        self.limits = self.limits.with_slack(slack);
        self
    }

    /// The limits it enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The earliest instant, not before `now`, at which one more call is allowed.
    pub fn next_allowed(&mut self, now: Monotonic) -> Monotonic {
        self.next_allowed_as(now, Share::Full)
    }

    /// The earliest instant, not before `now`, at which a caller with `share` may call.
    pub fn next_allowed_as(&mut self, now: Monotonic, share: Share) -> Monotonic {
        let (per_minute, per_hour) = (self.limits.per_minute(share), self.limits.per_hour(share));
        let (minute, hour) = (self.limits.minute(), self.limits.hour());
        while self.log.front().is_some_and(|t| *t + hour <= now) {
            self.log.pop_front();
        }
        let mut at = now;
        if let Some(until) = self.blocked_until {
            at = at.max(until);
        }
        // The log holds only the last hour, so the hourly cap looks at the whole log and the
        // minute cap at its tail. With k calls over the cap, the k-th oldest must leave first.
        if self.log.len() >= per_hour {
            let leaving = self.log[self.log.len() - per_hour];
            at = at.max(leaving + hour);
        }
        if self.log.len() >= per_minute {
            let leaving = self.log[self.log.len() - per_minute];
            at = at.max(leaving + minute);
        }
        at
    }

    /// Records a call at `now` if one is allowed, or says when to try again.
    pub fn try_acquire(&mut self, now: Monotonic) -> Result<(), Monotonic> {
        let at = self.next_allowed(now);
        if at > now {
            return Err(at);
        }
        self.log.push_back(now);
        Ok(())
    }

    /// Refuses every call before `until` (e.g. after a 429 with `Retry-After`).
    pub fn block_until(&mut self, until: Monotonic) {
        self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
    }

    /// Calls recorded in the last hour.
    pub fn recorded(&self) -> usize {
        self.log.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_hundred_calls_pass_and_the_next_waits_for_the_first_to_leave_the_minute() {
        let t0 = Monotonic::after_origin(secs(1000));
        let mut w = RollingWindow::new(100, 1500);
        for i in 0..100 {
            assert_eq!(w.try_acquire(t0 + Duration::from_millis(i * 100)), Ok(()));
        }
        let t = t0 + secs(20);
        assert_eq!(w.try_acquire(t), Err(t0 + secs(60)));
        assert_eq!(w.try_acquire(t0 + secs(60)), Ok(()));
        // The second call (at 0.1 s) still holds its slot until 60.1 s.
        assert_eq!(w.try_acquire(t0 + secs(60)), Err(t0 + Duration::from_millis(60_100)));
    }

    #[test]
    fn no_rolling_minute_ever_holds_more_than_the_limit() {
        let t0 = Monotonic::after_origin(secs(1000));
        let mut w = RollingWindow::new(5, 1000);
        let mut granted = Vec::new();
        let mut now = t0;
        while granted.len() < 40 {
            match w.try_acquire(now) {
                Ok(()) => granted.push(now),
                Err(at) => now = at,
            }
            now += Duration::from_millis(700);
        }
        for (i, start) in granted.iter().enumerate() {
            let in_window = granted[i..].iter().filter(|t| **t < *start + secs(60)).count();
            assert!(in_window <= 5, "{in_window} calls in one minute");
        }
    }

    #[test]
    fn the_hourly_cap_holds_even_when_each_minute_is_under_its_limit() {
        let t0 = Monotonic::after_origin(secs(1000));
        let mut w = RollingWindow::new(100, 150);
        for i in 0..150 {
            // 50 calls a minute, well under the minute cap.
            assert_eq!(w.try_acquire(t0 + Duration::from_millis(i * 1200)), Ok(()));
        }
        let now = t0 + secs(200);
        assert_eq!(w.next_allowed(now), t0 + secs(3600));
        assert_eq!(w.try_acquire(t0 + secs(3600)), Ok(()));
        assert_eq!(w.recorded(), 150);
    }

    #[test]
    fn a_backlog_leaves_a_tenth_of_each_window_to_everyone_else() {
        let t0 = Monotonic::after_origin(secs(1000));
        let mut w = RollingWindow::new(100, 1500);
        for i in 0..90 {
            assert_eq!(w.next_allowed_as(t0, Share::Backlog), t0, "call {i}");
            assert_eq!(w.try_acquire(t0), Ok(()));
        }
        assert_eq!(w.next_allowed_as(t0, Share::Backlog), t0 + secs(60), "the backlog waits");
        for _ in 0..10 {
            assert_eq!(w.try_acquire(t0), Ok(()), "the reserve is there for the others");
        }
        assert_eq!(w.next_allowed_as(t0, Share::Full), t0 + secs(60));
        // Small limits keep no reserve: a tenth of 3 rounds down to none.
        let mut small = RollingWindow::new(3, 10);
        for _ in 0..3 {
            assert_eq!(small.next_allowed_as(t0, Share::Backlog), t0);
            small.try_acquire(t0).unwrap();
        }
        // The hourly limit keeps its tenth too.
        let mut hourly = RollingWindow::new(100, 100);
        for i in 0..90 {
            hourly.try_acquire(t0 + secs(30 * i)).unwrap();
        }
        let later = t0 + secs(30 * 90);
        assert_eq!(hourly.next_allowed_as(later, Share::Backlog), t0 + secs(3600));
        assert_eq!(hourly.next_allowed_as(later, Share::Full), later);
    }

    #[test]
    fn a_block_from_retry_after_holds_even_with_budget_left() {
        let t0 = Monotonic::after_origin(secs(1000));
        let mut w = RollingWindow::new(100, 1500);
        w.block_until(t0 + secs(30));
        w.block_until(t0 + secs(10));
        assert_eq!(w.try_acquire(t0), Err(t0 + secs(30)));
        assert_eq!(w.try_acquire(t0 + secs(30)), Ok(()));
    }

    #[test]
    fn slack_widens_the_window() {
        let t0 = Monotonic::after_origin(secs(1000));
        let mut w = RollingWindow::new(1, 10).with_slack(secs(2));
        assert_eq!(w.try_acquire(t0), Ok(()));
        assert_eq!(w.try_acquire(t0 + secs(60)), Err(t0 + secs(62)));
    }
}
