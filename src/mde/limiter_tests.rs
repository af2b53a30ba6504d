use super::*;
use crate::clock::{Clock, ManualClock};
use crate::mde::ledger::{LedgerFuture, Outlook, Reservation};
use crate::mde::rate::Limits;
use std::collections::VecDeque;
use std::sync::Mutex;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[tokio::test]
async fn acquire_returns_at_once_under_the_limit() {
    let limiter = RateLimiter::new(RollingWindow::new(3, 10), Arc::new(crate::clock::SystemClock));
    for _ in 0..3 {
        limiter.acquire().await;
    }
    assert_eq!(limiter.lock().recorded(), 3);
}

#[tokio::test]
async fn acquire_over_the_limit_sleeps_on_the_clock_until_the_first_call_leaves_the_minute() {
    let clock = ManualClock::new();
    let limiter = Arc::new(RateLimiter::new(RollingWindow::new(2, 10), Arc::new(clock.clone())));
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
    let clock = ManualClock::new();
    let limiter = RateLimiter::new(RollingWindow::new(1, 10), Arc::new(clock.clone()));
    let past = clock.monotonic();
    clock.advance(secs(1));
    assert_eq!(limiter.acquire_by(past).await, Ok(()), "under the limit even a past deadline allows a call");
    let ready = limiter.ready_at(Share::Full);
    assert_eq!(limiter.acquire_by(clock.monotonic() + secs(59)).await, Err(NotTaken::Until(ready)));
    assert_eq!(clock.next_deadline(), None, "it never slept");
    assert_eq!(limiter.lock().recorded(), 1);
    limiter.block_for(secs(600));
    let Err(NotTaken::Until(blocked)) = limiter.acquire_by(clock.monotonic() + secs(120)).await else {
        panic!("refused")
    };
    assert!(blocked >= clock.monotonic() + secs(599), "a block from Retry-After counts too");
}

#[tokio::test]
async fn acquire_by_waits_on_the_clock_when_the_budget_frees_in_time() {
    let clock = ManualClock::new();
    let limiter = Arc::new(RateLimiter::new(RollingWindow::new(1, 10), Arc::new(clock.clone())));
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

/// A ledger that answers as scripted (then grants every call), and remembers what it was asked.
#[derive(Default)]
struct Scripted {
    answers: Mutex<VecDeque<Result<Reservation, LedgerError>>>,
    asked: Mutex<Vec<(Api, Share, Timestamp)>>,
    paused: Mutex<Vec<(Api, Timestamp)>>,
}

impl Scripted {
    fn answering(answers: impl IntoIterator<Item = Result<Reservation, LedgerError>>) -> Arc<Self> {
        Arc::new(Self { answers: Mutex::new(answers.into_iter().collect()), ..Self::default() })
    }

    fn asked(&self) -> usize {
        self.asked.lock().unwrap().len()
    }
}

impl Ledger for Scripted {
    fn reserve(&self, api: Api, _: Limits, share: Share, now: Timestamp) -> LedgerFuture<'_, Reservation> {
        self.asked.lock().unwrap().push((api, share, now));
        let scripted = self.answers.lock().unwrap().pop_front();
        let answer = scripted.unwrap_or(Ok(Reservation { outcome: Ok(()), outlook: everyone(now) }));
        Box::pin(async move { answer })
    }

    fn pause(&self, api: Api, until: Timestamp) -> LedgerFuture<'_, ()> {
        self.paused.lock().unwrap().push((api, until));
        Box::pin(async { Ok(()) })
    }
}

fn everyone(at: Timestamp) -> Outlook {
    Outlook { full: at, backlog: at }
}

/// The tenant's budget is spent until `until`.
fn refused(until: Timestamp) -> Result<Reservation, LedgerError> {
    Ok(Reservation { outcome: Err(until), outlook: everyone(until) })
}

fn shared(clock: &ManualClock, ledger: Arc<Scripted>) -> RateLimiter {
    RateLimiter::new(RollingWindow::new(100, 1500), Arc::new(clock.clone())).shared(Api::Unisolate, ledger)
}

/// `t` is `d` after `from`, give or take the millisecond wall time is kept to.
fn about(t: Monotonic, from: Monotonic, d: Duration) -> bool {
    t + Duration::from_millis(2) >= from + d && t <= from + d + Duration::from_millis(2)
}

#[tokio::test]
async fn a_call_the_ledger_refuses_waits_on_the_clock_until_the_time_it_names_and_asks_again() {
    let clock = ManualClock::new();
    let ledger = Scripted::answering([refused(clock.now().plus(secs(30)))]);
    let limiter = Arc::new(shared(&clock, ledger.clone()));
    let start = clock.monotonic();
    let call = tokio::spawn({
        let limiter = limiter.clone();
        async move { limiter.take(None).await }
    });
    let wake = clock.wait_for_sleeper().await;
    assert!(about(wake, start, secs(30)), "waits for the other replicas' calls to leave the window");
    assert_eq!(limiter.lock().recorded(), 0, "nothing taken while the tenant's budget is spent");
    clock.advance_to(wake);
    assert_eq!(call.await.unwrap(), Ok(()));
    assert_eq!(ledger.asked(), 2, "asked again once the time came");
    assert_eq!(limiter.lock().recorded(), 1);
    assert!(ledger.asked.lock().unwrap().iter().all(|(api, share, _)| *api == Api::Unisolate && *share == Share::Full));
}

#[tokio::test]
async fn acquire_by_refuses_at_once_when_the_ledger_frees_the_call_only_after_the_deadline() {
    let clock = ManualClock::new();
    let ledger = Scripted::answering([refused(clock.now().plus(secs(600)))]);
    let limiter = shared(&clock, ledger.clone());
    let start = clock.monotonic();
    let Err(NotTaken::Until(at)) = limiter.acquire_by(start + secs(120)).await else { panic!("refused") };
    assert!(about(at, start, secs(600)), "says when the ledger frees it");
    assert_eq!(clock.next_deadline(), None, "it never slept");
    // What the ledger showed holds here too: no second question before then.
    assert!(about(limiter.ready_at(Share::Full), start, secs(600)));
    assert!(limiter.ready_by(start + secs(120)).is_err());
    assert!(matches!(limiter.acquire_by(start + secs(120)).await, Err(NotTaken::Until(_))));
    assert_eq!(ledger.asked(), 1);
}

#[tokio::test]
async fn a_ledger_that_cannot_be_asked_fails_the_call_and_nothing_is_taken() {
    let clock = ManualClock::new();
    let down = LedgerError::new(&std::io::Error::other("connection refused"));
    let ledger = Scripted::answering([Err(down.clone())]);
    let limiter = shared(&clock, ledger.clone());
    assert_eq!(limiter.take(None).await, Err(NotTaken::Unaccounted(down.clone())));
    assert_eq!(limiter.lock().recorded(), 0);
    assert!(down.to_string().contains("connection refused"), "{down}");
    assert_eq!(limiter.take(None).await, Ok(()), "taken once the ledger answers");
}

#[tokio::test]
async fn a_429_pauses_the_api_here_and_for_every_replica() {
    let clock = ManualClock::new();
    let ledger = Scripted::answering([]);
    let limiter = shared(&clock, ledger.clone());
    let (start, wall) = (clock.monotonic(), clock.now());
    limiter.pause_for(secs(300)).await;
    let paused = ledger.paused.lock().unwrap().clone();
    assert_eq!(paused.len(), 1);
    assert_eq!(paused[0].0, Api::Unisolate);
    assert!(paused[0].1 >= wall.plus(secs(300)) && paused[0].1 <= clock.now().plus(secs(300)));
    assert!(limiter.ready_at(Share::Full) >= start + secs(300), "blocked here at once");
}

#[tokio::test]
async fn the_backlog_waits_for_what_the_ledger_showed_of_its_share() {
    let clock = ManualClock::new();
    let now = clock.now();
    let outlook = Outlook { full: now, backlog: now.plus(secs(40)) };
    let ledger = Scripted::answering([Ok(Reservation { outcome: Ok(()), outlook })]);
    let limiter = shared(&clock, ledger);
    let start = clock.monotonic();
    assert_eq!(limiter.take(None).await, Ok(()));
    assert!(limiter.ready_at(Share::Full) <= clock.monotonic(), "the full budget has room");
    assert!(about(limiter.ready_at(Share::Backlog), start, secs(40)), "the backlog's tenth is spent tenant-wide");
}
