//! The tenant's one MDE budget, shared by every replica: a [`Ledger`] of the calls all of them
//! made and of the pauses a 429 imposed. The [`RateLimiter`](super::RateLimiter) asks it before
//! every call, after its own in-process window.
//!
//! The ledger's times are wall-clock [`Timestamp`]s, since replicas share no monotonic origin.
//! Its arithmetic is [`Crowding::ready`], pure: given the pause and the calls that crowd each
//! window, when the next call may go.

use std::future::Future;
use std::pin::Pin;

use super::rate::{Api, Limits, Share};
use crate::clock::Timestamp;

/// What a [`Ledger`] call returns: boxed, so the ledger can sit behind `Arc<dyn Ledger>`.
pub type LedgerFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, LedgerError>> + Send + 'a>>;

/// Where every replica records its MDE calls and the pauses after a 429.
pub trait Ledger: Send + Sync + 'static {
    /// In one write transaction: records a call of `api` at `now` if neither the pause nor
    /// `limits` (for a caller with `share`, counting every replica's calls) forbids it. Says
    /// which, and what the ledger showed before this call.
    fn reserve(&self, api: Api, limits: Limits, share: Share, now: Timestamp) -> LedgerFuture<'_, Reservation>;

    /// Pauses `api` for every replica until `until` (a later pause already recorded stands).
    fn pause(&self, api: Api, until: Timestamp) -> LedgerFuture<'_, ()>;
}

/// The ledger's answer to [`Ledger::reserve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// `Ok` when the call was recorded and may be sent; else when to ask again.
    pub outcome: Result<(), Timestamp>,
    /// When each share could have called, as the ledger stood before this reservation: never
    /// later than the truth, so a replica may wait for it without asking again.
    pub outlook: Outlook,
}

/// When a caller of each [`Share`] may next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outlook {
    pub full: Timestamp,
    pub backlog: Timestamp,
}

/// The calls that keep one more call out of a window, for one share: the newest
/// `limits.per_minute(share)`-th call inside the minute and `per_hour(share)`-th inside the
/// hour, when the window holds that many. Once it leaves, one more call fits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Blockers {
    pub minute: Option<Timestamp>,
    pub hour: Option<Timestamp>,
}

/// What the ledger holds for one API at one instant, as far as the next call is concerned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Crowding {
    /// The end of the pause a 429 imposed, if one was recorded (it may have passed).
    pub paused_until: Option<Timestamp>,
    pub full: Blockers,
    pub backlog: Blockers,
}

impl Crowding {
    /// The earliest instant, not before `now`, at which a caller with `share` may call: after
    /// the pause, and after the call blocking each window has left it.
    pub fn ready(&self, share: Share, limits: Limits, now: Timestamp) -> Timestamp {
        let blockers = match share {
            Share::Full => self.full,
            Share::Backlog => self.backlog,
        };
        let leaves = [
            self.paused_until,
            blockers.minute.map(|t| t.plus(limits.minute())),
            blockers.hour.map(|t| t.plus(limits.hour())),
        ];
        leaves.into_iter().flatten().fold(now, Timestamp::max)
    }

    /// [`ready`](Self::ready) for both shares.
    pub fn outlook(&self, limits: Limits, now: Timestamp) -> Outlook {
        Outlook { full: self.ready(Share::Full, limits, now), backlog: self.ready(Share::Backlog, limits, now) }
    }
}

/// The ledger could not be read or written (the database is unreachable, or its storage
/// fails). No call may go to MDE unaccounted, so the call is not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the shared MDE budget could not be read or written: {0}")]
pub struct LedgerError(String);

impl LedgerError {
    /// From the cause, with its whole chain (a database error's top line rarely says why).
    pub fn new(cause: &(dyn std::error::Error + 'static)) -> Self {
        Self(super::error::error_chain(cause))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_unix_ms(1_800_000_000_000 + s * 1000)
    }

    #[test]
    fn an_empty_ledger_allows_a_call_now() {
        let limits = Limits::new(100, 1500);
        assert_eq!(Crowding::default().ready(Share::Full, limits, at(0)), at(0));
        assert_eq!(Crowding::default().outlook(limits, at(0)), Outlook { full: at(0), backlog: at(0) });
    }

    #[test]
    fn each_window_frees_when_its_blocking_call_leaves_it_slack_included() {
        let limits = Limits::new(100, 1500).with_slack(Duration::from_secs(1));
        let full = Blockers { minute: Some(at(10)), hour: None };
        let backlog = Blockers { minute: Some(at(20)), hour: Some(at(-3000)) };
        let c = Crowding { paused_until: None, full, backlog };
        assert_eq!(c.ready(Share::Full, limits, at(30)), at(71));
        // The hour's blocker leaves at -3000 + 3601 = 601, after the minute's at 81.
        assert_eq!(c.ready(Share::Backlog, limits, at(30)), at(601));
        assert_eq!(c.ready(Share::Full, limits, at(90)), at(90), "gone by then");
    }

    #[test]
    fn a_pause_holds_every_share_and_a_past_one_holds_nothing() {
        let limits = Limits::new(100, 1500);
        let c = Crowding { paused_until: Some(at(300)), ..Crowding::default() };
        assert_eq!(c.outlook(limits, at(0)), Outlook { full: at(300), backlog: at(300) });
        assert_eq!(c.ready(Share::Full, limits, at(301)), at(301));
    }
}
