//! [`RateLimiter`]: the async shell around one API's budget, in two gates. The first is this
//! process's [`RollingWindow`], in memory; the second, when the limiter is
//! [`shared`](RateLimiter::shared), the [`Ledger`] every replica records its calls in. A call
//! is taken only when both allow it, so replicas together stay within the tenant's one budget.
//!
//! Waiting is on the [`Clock`](crate::clock::Clock); the ledger answers in wall time, turned
//! into this clock's monotonic time when waited for.

use std::sync::Arc;
use std::time::Duration;

use super::ledger::{Ledger, LedgerError};
use super::rate::{Api, RollingWindow, Share};
use crate::clock::{Monotonic, SharedClock, Timestamp};

/// How long [`RateLimiter::acquire`] waits before asking an unreachable ledger again.
const LEDGER_RETRY: Duration = Duration::from_secs(1);

/// An async limiter over a [`RollingWindow`] and, when shared, a [`Ledger`], on a clock.
/// Waiters are served first come, first served.
pub struct RateLimiter {
    // tokio's Mutex is fair: whoever queued first is first to get a turn.
    turn: tokio::sync::Mutex<()>,
    window: std::sync::Mutex<RollingWindow>,
    clock: SharedClock,
    shared: Option<Tenant>,
}

/// The tenant-wide gate of one API.
struct Tenant {
    api: Api,
    ledger: Arc<dyn Ledger>,
    /// When each share (full, backlog) may call tenant-wide, as the last reservation showed,
    /// on the monotonic clock: never later than the truth, so waiting for it is safe.
    known: std::sync::Mutex<Option<(Monotonic, Monotonic)>>,
}

/// Why [`RateLimiter::take`] took no call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotTaken {
    /// The budget (or a pause after a 429) allows the call only at this instant, past the
    /// caller's deadline.
    Until(Monotonic),
    /// The ledger could not be asked, so the call would go unaccounted: not sent.
    Unaccounted(LedgerError),
}

impl From<LedgerError> for NotTaken {
    fn from(e: LedgerError) -> Self {
        Self::Unaccounted(e)
    }
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let api = self.shared.as_ref().map(|t| t.api);
        f.debug_struct("RateLimiter").field("window", &*self.lock()).field("shared", &api).finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// The limits its window enforces.
    pub fn limits(&self) -> super::rate::Limits {
        self.lock().limits()
    }

    /// A limiter enforcing `window`, reading the time from `clock` and waiting on it.
    pub fn new(window: RollingWindow, clock: SharedClock) -> Self {
        Self { turn: tokio::sync::Mutex::new(()), window: std::sync::Mutex::new(window), clock, shared: None }
    }

    /// The same limiter for `api`, also asking `ledger` before every call, with the window's
    /// limits (so every replica's calls count) and recording 429 pauses there.
    pub fn shared(self, api: Api, ledger: Arc<dyn Ledger>) -> Self {
        Self { shared: Some(Tenant { api, ledger, known: std::sync::Mutex::new(None) }), ..self }
    }

    /// Waits until a call is allowed and records it, as long as it takes; returns at once when
    /// under the limits. An unreachable ledger is asked again every second, never bypassed.
    pub async fn acquire(&self) {
        loop {
            match self.take(None).await {
                Ok(()) => return,
                Err(NotTaken::Until(at)) => self.clock.sleep_until(at).await,
                Err(NotTaken::Unaccounted(e)) => {
                    tracing::warn!(error = %e, "cannot account for an MDE call; asking again in 1 s");
                    self.clock.sleep(LEDGER_RETRY).await;
                }
            }
        }
    }

    /// [`take`](Self::take) by `deadline`.
    pub async fn acquire_by(&self, deadline: Monotonic) -> Result<(), NotTaken> {
        self.take(Some(deadline)).await
    }

    /// Takes one call, waiting in turn as long as it takes (`None`) or never past `deadline`:
    /// refuses at once with [`NotTaken::Until`] if the budget (or a block from `Retry-After`)
    /// does not free by then. When the queue ahead outlasts `deadline`, `Until` holds an instant
    /// not before it. A ledger that cannot be asked fails the call with
    /// [`NotTaken::Unaccounted`], whatever the deadline.
    pub async fn take(&self, deadline: Option<Monotonic>) -> Result<(), NotTaken> {
        if let Some(deadline) = deadline {
            self.ready_by(deadline).map_err(NotTaken::Until)?;
        }
        let _turn = match deadline {
            None => self.turn.lock().await,
            Some(deadline) => tokio::select! {
                // An uncontended turn is taken at once, without ever sleeping on the clock.
                biased;
                turn = self.turn.lock() => turn,
                () = self.clock.sleep_until(deadline) => {
                    return Err(NotTaken::Until(self.ready_at(Share::Full).max(deadline)));
                }
            },
        };
        loop {
            let now = self.clock.monotonic();
            let ready = self.ready_as_of(now, Share::Full);
            let at = if ready > now {
                ready
            } else {
                match self.take_now().await? {
                    Ok(()) => return Ok(()),
                    Err(at) => at,
                }
            };
            if deadline.is_some_and(|d| at > d) {
                return Err(NotTaken::Until(at));
            }
            self.clock.sleep_until(at).await;
        }
    }

    /// The window allows a call now: takes it from the ledger, when shared, then records it
    /// locally. `Err(when)` when either refuses.
    async fn take_now(&self) -> Result<Result<(), Monotonic>, LedgerError> {
        let Some(tenant) = &self.shared else {
            return Ok(self.lock().try_acquire(self.clock.monotonic()));
        };
        let limits = self.lock().limits();
        let reservation = tenant.ledger.reserve(tenant.api, limits, Share::Full, self.clock.now()).await?;
        let outlook = reservation.outlook;
        *tenant.lock() = Some((self.local(outlook.full), self.local(outlook.backlog)));
        match reservation.outcome {
            // Refused locally only if a 429 on another call blocked the API meanwhile: the
            // ledger's row then stays spent unused, which errs on the safe side.
            Ok(()) => Ok(self.lock().try_acquire(self.clock.monotonic())),
            Err(at) => Ok(Err(self.local(at))),
        }
    }

    /// `Ok` when a [`Share::Full`] caller may call now or by `deadline`, else `Err(when)`;
    /// takes nothing. A deadline already past still allows a call the budget allows now.
    pub fn ready_by(&self, deadline: Monotonic) -> Result<(), Monotonic> {
        let now = self.clock.monotonic();
        let ready = self.ready_as_of(now, Share::Full);
        if ready > deadline.max(now) { Err(ready) } else { Ok(()) }
    }

    /// When the next call by a caller with `share` would be allowed, without taking it: by this
    /// process's window and, when shared, by what the ledger last showed of every replica's
    /// calls and pauses. The worker waits for this before a call, renewing its claim meanwhile,
    /// so a long wait never outlives a lease.
    pub fn ready_at(&self, share: Share) -> Monotonic {
        self.ready_as_of(self.clock.monotonic(), share)
    }

    /// [`ready_at`](Self::ready_at) as of `now`, which it returns when a call may go now.
    fn ready_as_of(&self, now: Monotonic, share: Share) -> Monotonic {
        let local = self.lock().next_allowed_as(now, share);
        let known = self.shared.as_ref().and_then(|t| *t.lock());
        match (known, share) {
            (Some((full, _)), Share::Full) => local.max(full),
            (Some((_, backlog)), Share::Backlog) => local.max(backlog),
            (None, _) => local,
        }
    }

    /// Blocks this API here until `now + wait`, e.g. after MDE answered 429 with `Retry-After`.
    pub fn block_for(&self, wait: Duration) {
        self.lock().block_until(self.clock.monotonic() + wait);
    }

    /// [`block_for`](Self::block_for), and when shared, pauses the API for every replica. A
    /// ledger that cannot be written is logged: the others then meet MDE's 429 themselves.
    pub async fn pause_for(&self, wait: Duration) {
        self.block_for(wait);
        let Some(tenant) = &self.shared else { return };
        if let Err(e) = tenant.ledger.pause(tenant.api, self.clock.now().plus(wait)).await {
            tracing::warn!(api = ?tenant.api, error = %e, "could not pause the API for the other replicas");
        }
    }

    /// The wall time `t` on this limiter's monotonic clock. A wait for it may end a hair early
    /// (the two clocks are read one after the other); the ledger then names `t` again.
    fn local(&self, t: Timestamp) -> Monotonic {
        let now = self.clock.monotonic();
        now + t.since(self.clock.now())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RollingWindow> {
        // The window holds no invariant a panic could break halfway, so poison is harmless.
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Tenant {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Monotonic, Monotonic)>> {
        // One value, replaced whole: poison is harmless.
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
#[path = "limiter_tests.rs"]
mod tests;
