//! The scan: one read of the tenant's actions since the view's cursor (one call per page) every
//! `poll_interval` while actions are in flight, every `[mde] bypass_scan_interval` otherwise
//! (a read by a send's re-check counts). It follows every dispatched release at once (instead
//! of one GET per action), judges every Unisolate seen (bypasses: those no release of dualkey's
//! explains), and answers due bypasses.

use super::heartbeat::Heartbeat;
use super::{Step, Worker, poll};
use crate::clock::Timestamp;
use crate::db::{self, worker::Claim};
use crate::fleet::bypass;
use crate::mde::{Api, Share, Wait};

/// When the next scan is due: at once before the first; then after `poll_interval` while a
/// release is dispatched (not before its own next poll), an Unisolate the view holds is still
/// running or a bypass waits for its answer; else after `bypass_scan_interval`.
pub(super) async fn due_at(w: &Worker) -> anyhow::Result<Timestamp> {
    let Some(scanned) = *w.last_scan() else { return Ok(Timestamp::EPOCH) };
    // A read of the actions by a send's re-check serves the scan too.
    let last = w.fleet.actions_read_at().map_or(scanned, |read| read.max(scanned));
    let (next_poll, reisolations) = {
        let mut conn = w.state.db.reader().await?;
        (db::fleet::next_poll(&mut conn).await?, db::fleet::reisolations_open(&mut conn).await?)
    };
    let soon = last.plus(w.config.poll_interval);
    Ok(match next_poll {
        Some(p) => soon.max(p),
        None if reisolations || w.fleet.unisolate_running() => soon,
        None => last.plus(w.state.settings.mde.bypass_scan_interval.get()),
    })
}

/// Scans if a scan is due. `Worked` when the scan changed something (a release progressed or
/// ended, a bypass was found or answered), so callers driving the worker count changes, not reads.
pub(super) async fn run(w: &Worker) -> anyhow::Result<Step> {
    let now = w.state.clock.now();
    // One replica scans for all: the others' dispatched releases are followed by its scan.
    let scan = crate::replica::jobs::Job::BypassScan;
    if !w.state.jobs.lead_now(&w.state.db, scan, now).await? || due_at(w).await? > now {
        return Ok(Step::Idle);
    }
    *w.last_scan() = Some(now);
    // Never wait for the budget: a scan skipped now is made at the next interval. It leaves a
    // tenth of the list budget to requests reading a device and to sends looking for their action.
    if w.mde.ready_at(Api::ListActions, Share::Backlog) > w.state.clock.monotonic() {
        tracing::debug!("the ListActions budget is spent; scanning at the next interval");
        return Ok(Step::Idle);
    }
    let since = *w.bypass_since.get_or_try_init(|| bypass::since(&w.state)).await?;
    if let Err(e) = w.fleet.read_actions(Wait::AtMost(std::time::Duration::ZERO)).await {
        // Polls fall back to the next scan; nothing is lost by waiting.
        tracing::warn!(error = %e, "reading MDE's actions failed; will scan again");
        return Ok(Step::Idle);
    }
    let followed = follow(w, now).await?;
    let seen = w.fleet.take_changed_unisolates();
    let (found, later) = match bypass::review(&w.state, since, &seen).await {
        Ok(judged) => judged,
        Err(e) => {
            // Judged again at the next scan: a bypass is never lost to a failed write.
            w.fleet.requeue_unisolates(seen);
            return Err(e);
        }
    };
    w.fleet.requeue_unisolates(later);
    if found > 0 {
        tracing::warn!(found, "devices released outside dualkey");
    }
    let fleet = w.fleet.clone();
    let answered =
        bypass::reisolate_due(&w.state, &w.mde, w.config.retry, |id| fleet.action(id).and_then(|a| a.status)).await?;
    Ok(if followed + found + answered > 0 { Step::Worked } else { Step::Idle })
}

/// Records, for every dispatched release whose action the list showed changed, its progress or
/// its end; reads by itself an action the list did not show. Answers how many it recorded.
async fn follow(w: &Worker, now: Timestamp) -> anyhow::Result<usize> {
    let in_flight = {
        let mut conn = w.state.db.reader().await?;
        db::fleet::in_flight(&mut conn).await?
    };
    if in_flight.is_empty() {
        return Ok(0);
    }
    let mut tx = w.state.db.begin().await?;
    db::fleet::polled_all(&mut tx, now.plus(w.config.poll_interval)).await?;
    tx.commit().await?;
    let mut recorded = 0;
    for r in in_flight {
        let Some(action_id) = r.mde_action_id.as_deref() else { continue };
        let seen = w.fleet.action(action_id);
        // Unchanged and still running: nothing to record. A final status always is (an action
        // adopted after it ended is recorded `dispatched` with that status).
        if let Some(a) = &seen
            && let Some(status) = &a.status
            && !status.is_final()
            && Some(status.as_str()) == r.mde_action_status.as_deref()
        {
            continue;
        }
        let Some(claim) = take(w, &r.id, now).await? else { continue };
        let duty = async {
            match seen {
                Some(action) => poll::apply(w, claim.clone(), Ok(action)).await,
                None => poll::run(w, claim.clone()).await,
            }
        };
        Heartbeat::of(w).beating(&claim, duty).await?;
        recorded += 1;
    }
    Ok(recorded)
}

/// Takes the poll lease of release `id`, if no one holds it.
async fn take(w: &Worker, id: &str, now: Timestamp) -> anyhow::Result<Option<Claim>> {
    let token = format!("{}/{}", w.name, uuid::Uuid::new_v4().simple());
    let mut tx = w.state.db.begin().await?;
    let Some(due) = db::worker::poll_job(&mut tx, id, now).await? else { return Ok(None) };
    if !db::worker::take_lease(&mut tx, &due, &token, now, now.plus(w.config.lease)).await? {
        return Ok(None);
    }
    tx.commit().await?;
    Ok(Some(Claim { claim: token, ..due.claim }))
}
