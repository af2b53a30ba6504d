//! [`ManualClock`]: real time plus an offset that tests advance, waking the sleepers it reaches.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Notify;

use super::{Clock, Monotonic, Sleep, Timestamp};

/// The real clock shifted by an offset that tests advance. Real time keeps flowing (work paced
/// in real milliseconds, such as the test simulator's action lifecycle, still finishes), and
/// [`advance`](Self::advance) moves wall and monotonic time together and wakes every sleeper
/// whose deadline it reaches, so a test skips a minute of waiting without spending it.
#[derive(Debug, Default, Clone)]
pub struct ManualClock {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    offset_ns: AtomicU64,
    /// Signalled on every advance; sleepers re-check their deadline.
    advanced: Notify,
    /// Signalled whenever a task starts sleeping.
    parked: Notify,
    sleepers: Mutex<Sleepers>,
}

#[derive(Debug, Default)]
struct Sleepers {
    next_id: u64,
    deadlines: BTreeMap<u64, Monotonic>,
}

impl Inner {
    fn offset(&self) -> Duration {
        Duration::from_nanos(self.offset_ns.load(Ordering::SeqCst))
    }

    fn monotonic(&self) -> Monotonic {
        Monotonic::real() + self.offset()
    }

    fn sleepers(&self) -> MutexGuard<'_, Sleepers> {
        // Each change is one insert or remove, so a poisoned lock is still consistent.
        self.sleepers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A sleeper's entry in the clock's list, removed when its sleep completes or is dropped.
struct Parked {
    inner: Arc<Inner>,
    id: u64,
}

impl Parked {
    fn register(inner: &Arc<Inner>, deadline: Monotonic) -> Self {
        let id = {
            let mut sleepers = inner.sleepers();
            let id = sleepers.next_id;
            sleepers.next_id += 1;
            sleepers.deadlines.insert(id, deadline);
            id
        };
        inner.parked.notify_waiters();
        Self { inner: inner.clone(), id }
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        self.inner.sleepers().deadlines.remove(&self.id);
    }
}

impl ManualClock {
    /// A clock at real time, not advanced yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves this clock (and every copy of it) forward, and wakes every sleeper whose
    /// deadline it reaches.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self.inner.offset_ns.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |o| Some(o.saturating_add(by)));
        self.inner.advanced.notify_waiters();
    }

    /// Advances this clock to `deadline` (not at all if it is already there).
    pub fn advance_to(&self, deadline: Monotonic) {
        self.advance(deadline.saturating_since(self.monotonic()));
    }

    /// The earliest deadline of the tasks sleeping on this clock now, if any.
    pub fn next_deadline(&self) -> Option<Monotonic> {
        self.inner.sleepers().deadlines.values().min().copied()
    }

    /// Waits until at least one task sleeps on this clock, and returns the earliest deadline.
    /// Lets a test see that a caller is waiting, and until when, before it moves the clock.
    pub async fn wait_for_sleeper(&self) -> Monotonic {
        self.wait_for_sleeper_matching(|_| true).await
    }

    /// Waits until a task sleeps on this clock with a deadline `accept` takes, and returns the
    /// earliest such deadline (e.g. the one sleeper that waits an hour among short ones).
    pub async fn wait_for_sleeper_matching(&self, accept: impl Fn(Monotonic) -> bool) -> Monotonic {
        loop {
            let parked = self.inner.parked.notified();
            tokio::pin!(parked);
            parked.as_mut().enable();
            if let Some(deadline) = self.inner.sleepers().deadlines.values().copied().filter(|d| accept(*d)).min() {
                return deadline;
            }
            parked.await;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(OffsetDateTime::now_utc() + self.inner.offset())
    }

    fn monotonic(&self) -> Monotonic {
        self.inner.monotonic()
    }

    fn sleep_until(&self, deadline: Monotonic) -> Sleep {
        let inner = self.inner.clone();
        Box::pin(async move {
            if inner.monotonic() >= deadline {
                return;
            }
            let _parked = Parked::register(&inner, deadline);
            loop {
                // Listen for an advance before reading the time, so none is missed between.
                let advanced = inner.advanced.notified();
                tokio::pin!(advanced);
                advanced.as_mut().enable();
                let now = inner.monotonic();
                if now >= deadline {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep(deadline - now) => {}
                    () = advanced => {}
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);
    /// Only bounds a broken clock's hang; every wait below ends long before it.
    const HANG_GUARD: Duration = Duration::from_secs(10);

    #[test]
    fn a_manual_clock_moves_wall_and_monotonic_time_together() {
        let c = ManualClock::new();
        let (wall, mono) = (c.now(), c.monotonic());
        c.advance(HOUR);
        assert!(c.now().since(wall) >= HOUR);
        assert!(c.monotonic() - mono >= HOUR);
        let copy = c.clone();
        copy.advance(HOUR);
        assert!(c.monotonic() - mono >= 2 * HOUR, "copies share one offset");
    }

    #[tokio::test]
    async fn a_sleeper_is_woken_by_advance_without_real_time_passing() {
        let clock = ManualClock::new();
        let sleeper = tokio::spawn(clock.sleep(HOUR));
        let deadline = clock.wait_for_sleeper().await;
        assert!(deadline - clock.monotonic() > HOUR - Duration::from_secs(1));
        assert!(!sleeper.is_finished());
        clock.advance(HOUR);
        tokio::time::timeout(HANG_GUARD, sleeper).await.expect("woken by the advance").unwrap();
        assert_eq!(clock.next_deadline(), None, "a finished sleeper leaves the list");
    }

    #[tokio::test]
    async fn an_advance_wakes_only_the_sleepers_whose_deadline_it_reaches() {
        let clock = ManualClock::new();
        let start = clock.monotonic();
        let soon = tokio::spawn(clock.sleep_until(start + Duration::from_secs(10)));
        let late = tokio::spawn(clock.sleep_until(start + HOUR));
        assert_eq!(clock.wait_for_sleeper_matching(|d| d > start + Duration::from_secs(10)).await, start + HOUR);
        assert_eq!(clock.next_deadline(), Some(start + Duration::from_secs(10)));
        clock.advance(Duration::from_secs(10));
        tokio::time::timeout(HANG_GUARD, soon).await.expect("reached by the advance").unwrap();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!late.is_finished(), "an hour away still");
        assert_eq!(clock.next_deadline(), Some(start + HOUR));
        clock.advance_to(start + HOUR);
        tokio::time::timeout(HANG_GUARD, late).await.expect("reached by the second advance").unwrap();
    }

    #[tokio::test]
    async fn a_sleep_whose_deadline_has_passed_completes_at_once() {
        use futures::FutureExt;
        let clock = ManualClock::new();
        let past = clock.monotonic();
        assert_eq!(clock.sleep_until(past).now_or_never(), Some(()));
        assert_eq!(clock.sleep(Duration::ZERO).now_or_never(), Some(()));
        assert_eq!(clock.next_deadline(), None);
    }

    #[tokio::test]
    async fn real_time_still_flows_for_a_manual_clock() {
        let clock = ManualClock::new();
        tokio::time::timeout(HANG_GUARD, clock.sleep(Duration::from_millis(5))).await.expect("real time passes");
    }

    #[tokio::test]
    async fn a_dropped_sleep_leaves_the_list() {
        let clock = ManualClock::new();
        let sleeper = tokio::spawn(clock.sleep(HOUR));
        clock.wait_for_sleeper().await;
        sleeper.abort();
        let _ = sleeper.await;
        assert_eq!(clock.next_deadline(), None);
    }
}
