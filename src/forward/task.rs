//! One forwarder's task: read the entries after its cursor, send them, move the cursor once they
//! are known delivered, and wait: for the next commit that appends entries (or [`RESCAN`], for
//! entries other processes append), for a syslog batch to settle, or after a failure for a
//! backoff on the daemon's clock. No transaction is open while anything is sent.
//!
//! Syslog: a batch counts as delivered only when the connection is seen open ([`SETTLE`] after
//! it was written, before the next batch); a connection found closed or failed is dropped and
//! the next one starts again from the cursor, so entries in flight are sent again, never lost.

use super::{Forwarder, Target, backoff, syslog, tcp};
use crate::audit::AuditEntry;
use crate::db;
use crate::logsafe::{Admit, LogBudget};
use crate::metrics::Observation;
use crate::state::AppState;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Without a wake-up, a forwarder looks for entries written by another process this often.
const RESCAN: Duration = Duration::from_secs(5);
/// After a storage error, a forwarder waits this long before reading again.
const STORAGE_PAUSE: Duration = Duration::from_secs(2);
/// A syslog batch is checked this long after it was written: time for a receiver that closed
/// or reset the connection to be seen doing so. Real time, not the daemon's clock: it is how
/// long a FIN or RST takes to arrive, which a test that moves its clock cannot hurry.
pub(crate) const SETTLE: Duration = Duration::from_millis(100);
/// Lines about failed deliveries, per forwarder: at most this many per [`LOG_WINDOW`].
const LOG_LINES: u32 = 5;
const LOG_WINDOW: Duration = Duration::from_secs(600);

/// What one step came to.
#[derive(Debug)]
enum Next {
    /// Entries became known delivered; look again now.
    Delivered,
    /// A syslog batch was written; check it after this wait.
    Settle(Duration),
    /// Nothing after the cursor.
    Idle,
}

/// Why a step failed.
enum Failure {
    /// Sending failed (the text holds no URL or secret): back off, then send again.
    Send(String),
    /// The database did not answer: pause, then read again.
    Storage(sqlx::Error),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Storage(e)
    }
}

/// A syslog forwarder's connection and the batch written on it that is not confirmed yet.
#[derive(Default)]
struct Session {
    conn: Option<tcp::Connection>,
    written: Option<Written>,
}

/// Entries `first..=last`, written to the current connection, checked at `settled_at`.
struct Written {
    first: i64,
    last: i64,
    /// How many entries: `first..=last`, or fewer where the trail has gaps.
    count: u64,
    settled_at: tokio::time::Instant,
}

/// Runs `f` until `stop`.
pub(crate) async fn run(state: AppState, f: Arc<Forwarder>, stop: CancellationToken) {
    let mut appended = state.db.watch_audit();
    let mut session = Session::default();
    let mut failures: u32 = 0;
    let mut storage_failing = false;
    let mut log = LogBudget::new(LOG_LINES, LOG_WINDOW);
    let task = format!("forward.{}", f.name);
    state.tasks.started(&task);
    loop {
        // Seen before reading, so a commit after the read wakes the wait below.
        appended.borrow_and_update();
        let result = step(&state, &f, &mut session).await;
        state.tasks.ended(&task, &result, state.clock.now());
        let wait = match result {
            Ok(next) => {
                if std::mem::take(&mut storage_failing) {
                    tracing::info!(forwarder = %f.name, "audit trail readable again");
                }
                match next {
                    Next::Delivered => {
                        if std::mem::take(&mut failures) > 0 {
                            tracing::info!(forwarder = %f.name, "audit forwarding delivers again");
                        }
                        continue;
                    }
                    Next::Settle(d) => {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            () = tokio::time::sleep(d) => {}
                        }
                        continue;
                    }
                    Next::Idle => None,
                }
            }
            Err(Failure::Send(reason)) => {
                failures = failures.saturating_add(1);
                let wait = backoff(f.backoff_base, f.backoff_max, failures, rand::random::<f64>());
                let now = state.clock.now();
                if let Admit::Log { suppressed } = log.admit(now) {
                    tracing::warn!(forwarder = %f.name, error = %reason, failures, ?wait, suppressed, "audit forwarding failed; sending again from the cursor");
                }
                if let Err(e) = record_failure(&state, &f.name, &reason).await {
                    tracing::debug!(forwarder = %f.name, error = %e, "could not record the forwarding failure");
                }
                Some(wait)
            }
            Err(Failure::Storage(e)) => {
                if !std::mem::replace(&mut storage_failing, true) {
                    tracing::warn!(forwarder = %f.name, error = %e, "audit trail unreadable for forwarding; retrying");
                }
                Some(STORAGE_PAUSE)
            }
        };
        match wait {
            Some(d) => tokio::select! {
                _ = stop.cancelled() => return,
                () = state.clock.sleep(d) => {}
            },
            None => tokio::select! {
                _ = stop.cancelled() => return,
                _ = appended.changed() => {}
                () = state.clock.sleep(RESCAN) => {}
            },
        }
    }
}

#[tracing::instrument(skip_all, fields(forwarder = %f.name))]
async fn step(state: &AppState, f: &Forwarder, session: &mut Session) -> Result<Next, Failure> {
    match &f.target {
        Target::Hec(endpoint) => {
            let batch = next_batch(state, f).await?;
            let Some(last) = batch.last() else { return Ok(Next::Idle) };
            endpoint.post(&batch).await.map_err(Failure::Send)?;
            advance(state, &f.name, last.seq, batch.len() as u64).await?;
            Ok(Next::Delivered)
        }
        Target::Syslog { endpoint, host } => syslog_step(state, f, endpoint, host, session).await,
    }
}

async fn syslog_step(
    state: &AppState,
    f: &Forwarder,
    endpoint: &tcp::Endpoint,
    host: &str,
    session: &mut Session,
) -> Result<Next, Failure> {
    if let Some(w) = &session.written {
        let now = tokio::time::Instant::now();
        if now < w.settled_at {
            return Ok(Next::Settle(w.settled_at - now));
        }
    }
    if let Some(conn) = &mut session.conn {
        match conn.is_open().await {
            Ok(()) => {
                if let Some(w) = session.written.take() {
                    advance(state, &f.name, w.last, w.count).await?;
                    return Ok(Next::Delivered);
                }
            }
            Err(why) => {
                session.conn = None;
                if let Some(w) = session.written.take() {
                    let (first, last) = (w.first, w.last);
                    return Err(Failure::Send(format!("{why} before seq {first}..={last} were known delivered")));
                }
                tracing::debug!(forwarder = %f.name, reason = %why, "idle syslog connection gone; reconnecting");
            }
        }
    }
    let batch = next_batch(state, f).await?;
    let (Some(first), Some(last)) = (batch.first(), batch.last()) else { return Ok(Next::Idle) };
    let conn = match &mut session.conn {
        Some(conn) => conn,
        None => session.conn.insert(endpoint.connect(f.timeout).await.map_err(Failure::Send)?),
    };
    let bytes: Vec<u8> = batch.iter().flat_map(|e| syslog::frame(e, host)).collect();
    if let Err(why) = conn.send(&bytes, f.timeout).await {
        session.conn = None;
        return Err(Failure::Send(why));
    }
    session.written = Some(Written {
        first: first.seq,
        last: last.seq,
        count: batch.len() as u64,
        settled_at: tokio::time::Instant::now() + SETTLE,
    });
    Ok(Next::Settle(SETTLE))
}

/// The entries after `f`'s cursor, at most `batch_size`, in seq order.
async fn next_batch(state: &AppState, f: &Forwarder) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let mut conn = state.db.reader().await?;
    let after = db::forward::delivered_seq(&mut conn, &f.name).await?;
    db::audit::list(&mut conn, after, f.batch_size, None).await
}

/// Moves `name`'s cursor to `seq`, past `entries` entries it delivered.
async fn advance(state: &AppState, name: &str, seq: i64, entries: u64) -> Result<(), sqlx::Error> {
    let mut tx = state.db.begin().await?;
    db::forward::advance(&mut tx, name, seq, state.clock.now()).await?;
    tx.observe(Observation::Forwarded { forwarder: name.to_string(), entries });
    tx.commit().await
}

async fn record_failure(state: &AppState, name: &str, reason: &str) -> Result<(), sqlx::Error> {
    let mut tx = state.db.begin().await?;
    db::forward::failed(&mut tx, name, reason, state.clock.now()).await?;
    tx.observe(Observation::ForwardFailed { forwarder: name.to_string() });
    tx.commit().await
}
