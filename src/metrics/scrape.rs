//! One `/metrics` page: this process's counters, what its MDE client saw, and the gauges the
//! database holds at the moment of the scrape.

use super::text::{Exposition, Kind};
use super::{DECISION_BUCKETS, FINAL_BUCKETS, OUTCOMES};
use crate::domain::ReleaseStatus;
use crate::mde::{Api, MdeClient, Share};
use crate::state::AppState;
use std::time::Duration;

/// The longest a scrape waits for the database; past it, `dualkey_database_up` is 0 and the
/// database's gauges are left out, so the page still comes.
const DATABASE_BOUND: Duration = Duration::from_secs(3);

/// The outcomes of `dualkey_notification_deliveries_total`, each shown from the start.
const DELIVERY_OUTCOMES: [&str; 3] = ["delivered", "retry", "dead"];

/// The page, in the Prometheus text format.
pub(crate) async fn page(state: &AppState) -> String {
    let now = state.clock.now();
    let read = async {
        let mut conn = state.db.reader().await?;
        let gauges = crate::db::metrics::gauges(&mut conn).await?;
        let budget = match &state.mde {
            Some(mde) => crate::db::metrics::budget_used(&mut conn, mde.limits(), now).await?,
            None => Vec::new(),
        };
        Ok::<_, sqlx::Error>((gauges, budget))
    };
    let read = match tokio::time::timeout(DATABASE_BOUND, read).await {
        Ok(Ok(read)) => Some(read),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "metrics: the database did not answer");
            None
        }
        Err(_) => None,
    };
    let mut page = Exposition::default();
    page.family("dualkey_build_info", "The running dualkey's version (always 1).", Kind::Gauge).sample(
        "dualkey_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    page.family("dualkey_database_up", "Whether the database answered this scrape (1) or not (0).", Kind::Gauge)
        .sample("dualkey_database_up", &[], if read.is_some() { 1.0 } else { 0.0 });
    counters(state, &mut page);
    if let Some(mde) = &state.mde {
        mde_calls(mde, &mut page);
    }
    if let Some((g, budget)) = read {
        page.family("dualkey_releases", "Releases by status, every replica's (the database's count).", Kind::Gauge);
        for status in ReleaseStatus::ALL {
            let n = g.releases.iter().find(|(s, _)| s == status.as_str()).map_or(0, |(_, n)| *n);
            page.sample("dualkey_releases", &[("status", status.as_str())], n as f64);
        }
        page.family("dualkey_worker_queue_depth", "Releases approved and not yet sent to MDE.", Kind::Gauge).sample(
            "dualkey_worker_queue_depth",
            &[],
            g.queue_depth as f64,
        );
        let age = g.oldest_approved_at.map_or(0.0, |t| now.since(t).as_secs_f64());
        page.family(
            "dualkey_worker_oldest_approved_age_seconds",
            "How long the oldest release waiting to be sent has been approved (0 when none waits).",
            Kind::Gauge,
        )
        .sample("dualkey_worker_oldest_approved_age_seconds", &[], age);
        page.family("dualkey_audit_head_seq", "The sequence number of the last audit entry.", Kind::Gauge).sample(
            "dualkey_audit_head_seq",
            &[],
            g.audit_head_seq as f64,
        );
        if let Some(mde) = &state.mde {
            let limits = mde.limits();
            page.family(
                "dualkey_mde_budget_remaining",
                "Calls each MDE API allows now in its rolling window, every replica's calls counted.",
                Kind::Gauge,
            );
            for api in Api::ALL {
                let (minute, hour) =
                    budget.iter().find(|(name, ..)| name == api.name()).map_or((0, 0), |(_, m, h)| (*m, *h));
                let left = |limit: usize, used: i64| (limit as i64 - used).max(0) as f64;
                let minute = left(limits.per_minute(Share::Full), minute);
                let hour = left(limits.per_hour(Share::Full), hour);
                page.sample("dualkey_mde_budget_remaining", &[("api", api.name()), ("window", "minute")], minute);
                page.sample("dualkey_mde_budget_remaining", &[("api", api.name()), ("window", "hour")], hour);
            }
        }
    }
    page.finish()
}

/// The counters and histograms of this process.
fn counters(state: &AppState, page: &mut Exposition) {
    let s = state.db.metrics().snapshot();
    page.family("dualkey_decisions_total", "Decisions people made on releases, by outcome.", Kind::Counter);
    for outcome in OUTCOMES {
        let n = s.decisions.get(outcome).copied().unwrap_or(0);
        page.sample("dualkey_decisions_total", &[("outcome", outcome)], n as f64);
    }
    page.family(
        "dualkey_request_to_decision_seconds",
        "From a release's request to each approval, rejection or ratification of it.",
        Kind::Histogram,
    )
    .histogram("dualkey_request_to_decision_seconds", &DECISION_BUCKETS, &s.request_to_decision);
    page.family(
        "dualkey_approval_to_final_seconds",
        "From a release's approval to its final status (succeeded, failed, ...).",
        Kind::Histogram,
    )
    .histogram("dualkey_approval_to_final_seconds", &FINAL_BUCKETS, &s.approval_to_final);
    if let Some(delivery) = &state.delivery {
        page.family(
            "dualkey_notification_deliveries_total",
            "Notification attempts and ends by channel: delivered, retry (failed, sent again later), dead.",
            Kind::Counter,
        );
        for channel in &delivery.channels {
            for outcome in DELIVERY_OUTCOMES {
                let n = s.notifications.get(&(channel.name.clone(), outcome)).copied().unwrap_or(0);
                page.sample(
                    "dualkey_notification_deliveries_total",
                    &[("channel", &channel.name), ("outcome", outcome)],
                    n as f64,
                );
            }
        }
    }
    let forwarders = &state.settings.audit.forward;
    if !forwarders.is_empty() {
        page.family(
            "dualkey_audit_forwarded_entries_total",
            "Audit entries each forwarder has delivered.",
            Kind::Counter,
        );
        for f in forwarders {
            let n = s.forwarded.get(&f.name).copied().unwrap_or(0);
            page.sample("dualkey_audit_forwarded_entries_total", &[("forwarder", &f.name)], n as f64);
        }
        page.family("dualkey_audit_forward_failures_total", "Failed attempts of each forwarder.", Kind::Counter);
        for f in forwarders {
            let n = s.forward_failures.get(&f.name).copied().unwrap_or(0);
            page.sample("dualkey_audit_forward_failures_total", &[("forwarder", &f.name)], n as f64);
        }
    }
}

/// What this process's MDE client sent and what MDE answered.
fn mde_calls(mde: &MdeClient, page: &mut Exposition) {
    let stats = mde.stats();
    page.family(
        "dualkey_mde_calls_total",
        "Calls sent to MDE by API and answer (an HTTP status, or transport_error).",
        Kind::Counter,
    );
    for ((api, code), n) in stats.calls() {
        page.sample("dualkey_mde_calls_total", &[("api", api.name()), ("code", &code.label())], n as f64);
    }
    page.family("dualkey_mde_throttled_total", "Calls MDE answered 429 Too Many Requests, by API.", Kind::Counter);
    for api in Api::ALL {
        page.sample("dualkey_mde_throttled_total", &[("api", api.name())], stats.throttled(api) as f64);
    }
}
