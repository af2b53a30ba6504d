//! Rolling-window rate limiting: never more than N calls in any rolling minute nor M in any
//! rolling hour, per MDE API.
//!
//! [`RollingWindow`] is the pure core: it takes `now` as an argument, so tests check the window
//! math without sleeping. [`RateLimiter`] wraps it for async callers, in FIFO order, reading the
//! time from a [`Clock`](crate::clock::Clock) and waiting on it.

use std::collections::VecDeque;
use std::time::Duration;

use crate::clock::{Monotonic, SharedClock};

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

/// An exact sliding log of call times. A call at `t` occupies the half-open windows
/// `[t, t + 60 s)` and `[t, t + 3600 s)`; at most `per_minute` resp. `per_hour` calls may share
/// one. `slack` widens both windows, to absorb the latency between our clock and MDE's.
#[derive(Debug, Clone)]
pub struct RollingWindow {
    per_minute: usize,
    per_hour: usize,
    slack: Duration,
    log: VecDeque<Monotonic>,
    blocked_until: Option<Monotonic>,
}

impl RollingWindow {
    /// A window allowing `per_minute` and `per_hour` calls (each at least 1).
    pub fn new(per_minute: u32, per_hour: u32) -> Self {
        Self {
            per_minute: per_minute.max(1) as usize,
            per_hour: per_hour.max(1) as usize,
            slack: Duration::ZERO,
            log: VecDeque::new(),
            blocked_until: None,
        }
    }

    /// Widens both windows by `slack`.
    pub fn with_slack(mut self, slack: Duration) -> Self {
        self.slack = slack;
        self
    }

    /// The earliest instant, not before `now`, at which one more call is allowed.
    pub fn next_allowed(&mut self, now: Monotonic) -> Monotonic {
        self.next_allowed_as(now, Share::Full)
    }

    /// The earliest instant, not before `now`, at which a caller with `share` may call.
    pub fn next_allowed_as(&mut self, now: Monotonic, share: Share) -> Monotonic {
        let (per_minute, per_hour) = (share.of(self.per_minute), share.of(self.per_hour));
        let (minute, hour) = (MINUTE + self.slack, HOUR + self.slack);
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

/// An async limiter over a [`RollingWindow`], on a clock. Waiters are served first come,
/// first served.
pub struct RateLimiter {
    // tokio's Mutex is fair: whoever queued first is first to get a turn.
    turn: tokio::sync::Mutex<()>,
    window: std::sync::Mutex<RollingWindow>,
    clock: SharedClock,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").field("window", &*self.lock()).finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter enforcing `window`, reading the time from `clock` and waiting on it.
    pub fn new(window: RollingWindow, clock: SharedClock) -> Self {
        Self { turn: tokio::sync::Mutex::new(()), window: std::sync::Mutex::new(window), clock }
    }

    /// Waits until a call is allowed and records it. Returns at once when under the limits.
    pub async fn acquire(&self) {
        let _turn = self.turn.lock().await;
        loop {
            let attempt = self.lock().try_acquire(self.clock.monotonic());
            match attempt {
                Ok(()) => return,
                Err(at) => self.clock.sleep_until(at).await,
            }
        }
    }

    /// Like [`acquire`](Self::acquire), but never waits past `deadline`. Returns at once with
    /// `Err(when the call would be allowed)` if the budget (or a block from `Retry-After`) does
    /// not free by then; otherwise waits in turn and records the call. When the queue ahead
    /// outlasts `deadline`, the `Err` holds an instant not before `deadline`.
    pub async fn acquire_by(&self, deadline: Monotonic) -> Result<(), Monotonic> {
        self.ready_by(deadline)?;
        let _turn = tokio::select! {
            // An uncontended turn is taken at once, without ever sleeping on the clock.
            biased;
            turn = self.turn.lock() => turn,
            () = self.clock.sleep_until(deadline) => return Err(self.ready_at(Share::Full).max(deadline)),
        };
        loop {
            let attempt = self.lock().try_acquire(self.clock.monotonic());
            match attempt {
                Ok(()) => return Ok(()),
                Err(at) if at > deadline => return Err(at),
                Err(at) => self.clock.sleep_until(at).await,
            }
        }
    }

    /// `Ok` when a [`Share::Full`] caller may call now or by `deadline`, else `Err(when)`;
    /// takes nothing. A deadline already past still allows a call the budget allows now.
    pub fn ready_by(&self, deadline: Monotonic) -> Result<(), Monotonic> {
        let now = self.clock.monotonic();
        let ready = self.lock().next_allowed_as(now, Share::Full);
        if ready > deadline.max(now) { Err(ready) } else { Ok(()) }
    }

    /// When the next call by a caller with `share` would be allowed, without taking it. The
    /// worker waits for this before a call, renewing its claim meanwhile, so a long wait never
    /// outlives a lease.
    pub fn ready_at(&self, share: Share) -> Monotonic {
        self.lock().next_allowed_as(self.clock.monotonic(), share)
    }

    /// Blocks this API until `now + wait`, e.g. after MDE answered 429 with `Retry-After`.
    pub fn block_for(&self, wait: Duration) {
        self.lock().block_until(self.clock.monotonic() + wait);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RollingWindow> {
        // The window holds no invariant a panic could break halfway, so poison is harmless.
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;

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

    #[tokio::test]
    async fn acquire_returns_at_once_under_the_limit() {
        let limiter = RateLimiter::new(RollingWindow::new(3, 10), std::sync::Arc::new(crate::clock::SystemClock));
        for _ in 0..3 {
            limiter.acquire().await;
        }
        assert_eq!(limiter.lock().recorded(), 3);
    }

    #[tokio::test]
    async fn acquire_over_the_limit_sleeps_on_the_clock_until_the_first_call_leaves_the_minute() {
        let clock = crate::clock::ManualClock::new();
        let limiter =
            std::sync::Arc::new(RateLimiter::new(RollingWindow::new(2, 10), std::sync::Arc::new(clock.clone())));
        let first = clock.monotonic();
        limiter.acquire().await;
        limiter.acquire().await;
        let third = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.acquire().await }
        });
        let wake = clock.wait_for_sleeper().await;
        let ready = limiter.ready_at(Share::Full);
        assert!(wake >= first + secs(60) && wake == ready, "waits for the first call to leave");
        assert_eq!(limiter.lock().recorded(), 2);
        clock.advance_to(wake);
        third.await.unwrap();
        assert_eq!(limiter.lock().recorded(), 3);
    }

    #[tokio::test]
    async fn acquire_by_refuses_at_once_when_the_budget_frees_only_after_the_deadline() {
        let clock = crate::clock::ManualClock::new();
        let limiter = RateLimiter::new(RollingWindow::new(1, 10), std::sync::Arc::new(clock.clone()));
        let past = clock.monotonic();
        clock.advance(secs(1));
        assert_eq!(limiter.acquire_by(past).await, Ok(()), "under the limit even a past deadline allows a call");
        let ready = limiter.ready_at(Share::Full);
        assert_eq!(limiter.acquire_by(clock.monotonic() + secs(59)).await, Err(ready));
        assert_eq!(clock.next_deadline(), None, "it never slept");
        assert_eq!(limiter.lock().recorded(), 1);
        limiter.block_for(secs(600));
        let blocked = limiter.acquire_by(clock.monotonic() + secs(120)).await.unwrap_err();
        assert!(blocked >= clock.monotonic() + secs(599), "a block from Retry-After counts too");
    }

    #[tokio::test]
    async fn acquire_by_waits_on_the_clock_when_the_budget_frees_in_time() {
        let clock = crate::clock::ManualClock::new();
        let limiter =
            std::sync::Arc::new(RateLimiter::new(RollingWindow::new(1, 10), std::sync::Arc::new(clock.clone())));
        limiter.acquire().await;
        let ready = limiter.ready_at(Share::Full);
        let second = tokio::spawn({
            let limiter = limiter.clone();
            let deadline = clock.monotonic() + secs(61);
            async move { limiter.acquire_by(deadline).await }
        });
        let wake = clock.wait_for_sleeper().await;
        assert_eq!(wake, ready, "it sleeps until the first call leaves the minute");
        clock.advance_to(wake);
        assert_eq!(second.await.unwrap(), Ok(()));
        assert_eq!(limiter.lock().recorded(), 2);
    }
}
