//! What `/metrics` shows. Two kinds of figure:
//!
//! - Counters and histograms of this process ([`Metrics`]): decisions, the time to decide and
//!   to finish, notification attempts and forwarded entries, counted when the transaction that
//!   made them commits (a rolled-back decision counts nothing). MDE calls are counted by the
//!   client itself ([`crate::mde::CallStats`]). Each replica counts its own: sum them.
//! - Gauges read from the database at scrape time ([`scrape`]): releases by status, the
//!   worker's queue, the audit head, the tenant's MDE budget. Every replica of one database
//!   shows the same values: aggregate them with `max`, not `sum`.

pub(crate) mod scrape;
pub(crate) mod text;

use crate::clock::Timestamp;
use std::collections::BTreeMap;
use std::sync::Mutex;
use text::HistogramSnapshot;

/// Upper bounds of `dualkey_request_to_decision_seconds`: people take minutes to a day.
pub(crate) const DECISION_BUCKETS: [f64; 14] =
    [1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0];
/// Upper bounds of `dualkey_approval_to_final_seconds`: MDE takes seconds to minutes, a backlog
/// or an offline device longer.
pub(crate) const FINAL_BUCKETS: [f64; 12] =
    [1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 86400.0];

/// The outcomes of `dualkey_decisions_total`, each shown from the start (at 0).
pub(crate) const OUTCOMES: [&str; 4] = ["approved", "rejected", "ratified", "refused"];

/// Something that happened in a transaction, counted when it commits ([`crate::db::Tx::observe`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Observation {
    /// A person's decision on a release: `outcome` is one of [`OUTCOMES`]; `requested_at` is
    /// the release's, for the histogram (none for a refusal).
    Decision { outcome: &'static str, requested_at: Option<Timestamp>, at: Timestamp },
    /// A release approved at `approved_at` reached its final status at `at`.
    Finished { approved_at: Timestamp, at: Timestamp },
    /// One attempt to deliver a notification on `channel`: `delivered`, `retry` or `dead`.
    Notification { channel: String, outcome: &'static str },
    /// `entries` audit entries known delivered by the forwarder `forwarder`.
    Forwarded { forwarder: String, entries: u64 },
    /// A failed attempt of the forwarder `forwarder`.
    ForwardFailed { forwarder: String },
}

/// The counters and histograms of this process. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    inner: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    decisions: BTreeMap<&'static str, u64>,
    request_to_decision: Histogram,
    approval_to_final: Histogram,
    notifications: BTreeMap<(String, &'static str), u64>,
    forwarded: BTreeMap<String, u64>,
    forward_failures: BTreeMap<String, u64>,
}

/// What [`Metrics::snapshot`] reads: the same, at one instant.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub decisions: BTreeMap<&'static str, u64>,
    pub request_to_decision: HistogramSnapshot,
    pub approval_to_final: HistogramSnapshot,
    pub notifications: BTreeMap<(String, &'static str), u64>,
    pub forwarded: BTreeMap<String, u64>,
    pub forward_failures: BTreeMap<String, u64>,
}

impl Metrics {
    /// Counts what committed.
    pub(crate) fn record(&self, observations: impl IntoIterator<Item = Observation>) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for o in observations {
            match o {
                Observation::Decision { outcome, requested_at, at } => {
                    *c.decisions.entry(outcome).or_default() += 1;
                    if let Some(requested_at) = requested_at {
                        c.request_to_decision.observe(&DECISION_BUCKETS, at.since(requested_at).as_secs_f64());
                    }
                }
                Observation::Finished { approved_at, at } => {
                    c.approval_to_final.observe(&FINAL_BUCKETS, at.since(approved_at).as_secs_f64());
                }
                Observation::Notification { channel, outcome } => {
                    *c.notifications.entry((channel, outcome)).or_default() += 1;
                }
                Observation::Forwarded { forwarder, entries } => *c.forwarded.entry(forwarder).or_default() += entries,
                Observation::ForwardFailed { forwarder } => *c.forward_failures.entry(forwarder).or_default() += 1,
            }
        }
    }

    /// Every figure, at one instant.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Snapshot {
            decisions: c.decisions.clone(),
            request_to_decision: c.request_to_decision.snapshot(DECISION_BUCKETS.len()),
            approval_to_final: c.approval_to_final.snapshot(FINAL_BUCKETS.len()),
            notifications: c.notifications.clone(),
            forwarded: c.forwarded.clone(),
            forward_failures: c.forward_failures.clone(),
        }
    }
}

/// Observations by bucket (not cumulative; the last slot is past every bound), their sum and count.
#[derive(Debug, Default)]
struct Histogram {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; bounds.len() + 1];
        }
        let i = bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len());
        self.buckets[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    fn snapshot(&self, bounds: usize) -> HistogramSnapshot {
        let mut buckets = self.buckets.clone();
        buckets.resize(bounds + 1, 0);
        buckets.truncate(bounds);
        HistogramSnapshot { buckets, sum: self.sum, count: self.count }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_fall_in_the_first_bucket_whose_bound_holds_them() {
        let m = Metrics::default();
        let t = |s: i64| Timestamp::from_unix_ms(s * 1000);
        m.record([
            Observation::Decision { outcome: "approved", requested_at: Some(t(0)), at: t(1) },
            Observation::Decision { outcome: "rejected", requested_at: Some(t(0)), at: t(90) },
            Observation::Decision { outcome: "refused", requested_at: None, at: t(5) },
            Observation::Finished { approved_at: t(10), at: t(10 + 100_000) },
        ]);
        let s = m.snapshot();
        assert_eq!(s.decisions.get("approved"), Some(&1));
        assert_eq!(s.decisions.get("refused"), Some(&1));
        assert_eq!(s.request_to_decision.count, 2);
        assert_eq!(s.request_to_decision.sum, 91.0);
        assert_eq!(s.request_to_decision.buckets[0], 1, "1 s is in le=1");
        assert_eq!(s.request_to_decision.buckets[5], 1, "90 s is in le=120");
        assert_eq!(s.approval_to_final.count, 1);
        assert_eq!(s.approval_to_final.buckets.iter().sum::<u64>(), 0, "past every bound: only +Inf");
    }
}
