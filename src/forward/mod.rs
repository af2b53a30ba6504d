//! Off-host copies of the audit trail (`[[audit.forward]]`): every entry and every checkpoint,
//! in seq order from seq 1, to a syslog receiver ([`syslog`], over [`tcp`]) or a Splunk HTTP
//! Event Collector ([`hec`]), at least once.
//!
//! Each forwarder has a cursor in the database (`audit_forwarders.delivered_seq`): every entry
//! up to it is known delivered. One task per forwarder ([`task`]) sends the entries after it in
//! batches and moves it forward only once a batch is known delivered: on a 2xx from HEC; for
//! syslog, which has no acknowledgement, once the connection is seen still open after the batch
//! was written. After a failure or a reconnect it sends again from the cursor, so an outage
//! delays, a restart resumes, and nothing is lost; a receiver may see an entry twice and must
//! dedupe by `seq`. Nothing of this is audited (that would feed itself); failures are logged,
//! rate-limited, and shown per forwarder by `/readyz`, which they never make unready.

mod config;
mod hec;
mod syslog;
mod task;
mod tcp;

use crate::clock::Timestamp;
use crate::db::Db;
use crate::settings::Settings;
use crate::state::AppState;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One configured forwarder, its files read. `Debug` never shows the HEC token.
#[derive(Debug)]
pub(crate) struct Forwarder {
    pub(crate) name: String,
    target: Target,
    batch_size: i64,
    backoff_base: Duration,
    backoff_max: Duration,
    /// Bounds one connect, one write, one HTTP request.
    timeout: Duration,
}

/// Where a forwarder's entries go.
#[derive(Debug)]
enum Target {
    /// A syslog receiver, and the HOSTNAME this daemon gives in each message.
    Syslog {
        endpoint: tcp::Endpoint,
        host: String,
    },
    Hec(hec::Endpoint),
}

/// Every forwarder of this daemon.
#[derive(Debug)]
pub(crate) struct Forwarders {
    list: Vec<Arc<Forwarder>>,
}

/// The forwarders of `settings` (token and CA files read now, so a bad one stops start-up), or
/// `None` when there are none.
pub(crate) fn start(settings: &Settings) -> anyhow::Result<Option<Arc<Forwarders>>> {
    if settings.audit.forward.is_empty() {
        return Ok(None);
    }
    let host = syslog::this_host();
    let list = settings
        .audit
        .forward
        .iter()
        .enumerate()
        .map(|(i, f)| Forwarder::from_settings(i, f, &host).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Arc::new(Forwarders { list })))
}

impl Forwarders {
    /// Runs one task per forwarder until `stop`.
    pub(crate) async fn run(self: Arc<Self>, state: AppState, stop: CancellationToken) {
        let mut tasks = tokio::task::JoinSet::new();
        for f in &self.list {
            tasks.spawn(task::run(state.clone(), f.clone(), stop.clone()));
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// How far one forwarder is, as `/readyz` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = ForwarderStatus)]
pub(crate) struct Status {
    /// Every entry up to this seq is known delivered.
    pub delivered_seq: i64,
    /// Entries not known delivered: the newest seq minus `delivered_seq`.
    pub lag: i64,
    /// Why the last attempt that failed failed, and when (kept after recovery; compare with `lag`).
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
}

/// The status of each forwarder in `names` (a forwarder that has written nothing yet is at 0).
pub(crate) async fn status(db: &Db, names: &[&str]) -> Result<BTreeMap<String, Status>, sqlx::Error> {
    let mut conn = db.reader().await?;
    let head = crate::db::audit::head(&mut conn).await?.map_or(0, |(seq, _)| seq);
    let mut rows: BTreeMap<String, crate::db::forward::ForwarderRow> =
        crate::db::forward::list(&mut conn).await?.into_iter().map(|r| (r.name.clone(), r)).collect();
    Ok(names
        .iter()
        .map(|name| {
            let row = rows.remove(*name);
            let delivered_seq = row.as_ref().map_or(0, |r| r.delivered_seq);
            let status = Status {
                delivered_seq,
                lag: (head - delivered_seq).max(0),
                last_error: row.as_ref().and_then(|r| r.last_error.clone()),
                last_error_at: row.and_then(|r| r.last_error_at),
            };
            (name.to_string(), status)
        })
        .collect())
}

/// The wait after the `failures`-th failure in a row: `base * 2^(failures-1)`, at most `max`,
/// scaled by `jitter` in `[0, 1)` into its upper half, never below `base`.
pub(crate) fn backoff(base: Duration, max: Duration, failures: u32, jitter: f64) -> Duration {
    let exp = base.saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(30))).min(max);
    exp.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0).max(base.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_max_with_jitter_in_the_upper_half() {
        let (base, max) = (Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(backoff(base, max, 1, 0.0), base, "never below the base");
        assert_eq!(backoff(base, max, 1, 1.0), base);
        assert_eq!(backoff(base, max, 3, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(base, max, 3, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(base, max, 40, 1.0), max);
        assert_eq!(backoff(base, max, 40, 0.0), max / 2);
        assert_eq!(backoff(base, max, u32::MAX, 0.5), Duration::from_secs(45));
    }
}
