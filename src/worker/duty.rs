//! One duty of the worker (sending, following actions, re-isolating) as a loop of its own: it
//! claims only its kind of job, sleeps until its next one is due, and backs off on its own
//! failures, so a backlog of sends, or a wait for one MDE API's budget, never holds up another.

use super::{Step, Worker};
use crate::db::storage::caused_by_storage;
use crate::db::worker::Job;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Pause after a step failed outright for another reason than storage.
const ERROR_PAUSE: Duration = Duration::from_secs(1);
/// First pause after a step failed on storage; it doubles with each failure in a row, up to
/// [`STORAGE_PAUSE_MAX`], so storage that comes back is used again within seconds.
const STORAGE_PAUSE_FIRST: Duration = Duration::from_secs(1);
const STORAGE_PAUSE_MAX: Duration = Duration::from_secs(8);

/// Runs `job`'s duty for `w` until `stop` is cancelled. A job in flight is finished first;
/// none is claimed after `stop`.
pub(super) async fn run(w: Worker, job: Job, stop: CancellationToken) {
    let mut failures = Failures::default();
    let task = format!("worker.{}", job.as_str());
    w.state.tasks.started(&task);
    while !stop.is_cancelled() {
        // Listen before looking at the database, so a change another duty makes meanwhile
        // (a send recorded: a poll becomes due) still wakes this one.
        let changed = w.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let step = w.work(job).await;
        w.state.tasks.ended(&task, &step, w.state.clock.now());
        let (wait, idle) = match step {
            Ok(Step::Worked) => {
                failures.ended(job);
                w.changed.notify_waiters();
                continue;
            }
            Ok(Step::Idle) => {
                failures.ended(job);
                (w.idle_wait(job).await, true)
            }
            // After a failure only the clock wakes the duty: never a retry per change elsewhere.
            Err(e) => (failures.pause(&w, job, &e), false),
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            () = &mut changed, if idle => {}
            _ = w.state.approved.notified(), if idle && job == Job::Dispatch => {}
            () = w.state.clock.sleep(wait) => {}
        }
    }
}

/// A duty's failed steps in a row: storage failures back off on the clock and are logged once
/// per outage (the write health logs the outage itself), other failures every time.
#[derive(Debug, Default)]
struct Failures {
    storage: u32,
}

impl Failures {
    fn pause(&mut self, w: &Worker, job: Job, e: &anyhow::Error) -> Duration {
        if !caused_by_storage(e.as_ref()) {
            tracing::error!(duty = job.as_str(), error = format!("{e:#}"), "worker step failed; will retry");
            return ERROR_PAUSE;
        }
        w.state.db.write_health().failed(e.as_ref());
        self.storage += 1;
        let pause = storage_pause(self.storage);
        if self.storage == 1 {
            tracing::warn!(duty = job.as_str(), "storage failing: the duty backs off until writes succeed again");
        } else {
            tracing::debug!(duty = job.as_str(), failures = self.storage, ?pause, "storage still failing");
        }
        pause
    }

    fn ended(&mut self, job: Job) {
        if self.storage > 0 {
            tracing::info!(duty = job.as_str(), failures = self.storage, "storage writable again: the duty resumes");
            self.storage = 0;
        }
    }
}

/// The pause after the `n`th storage failure in a row (from 1).
fn storage_pause(n: u32) -> Duration {
    STORAGE_PAUSE_FIRST.saturating_mul(1 << n.saturating_sub(1).min(16)).min(STORAGE_PAUSE_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_failures_back_off_from_one_second_to_eight() {
        let pauses: Vec<u64> = (1..=6).map(|n| storage_pause(n).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 8, 8]);
        assert_eq!(storage_pause(u32::MAX), STORAGE_PAUSE_MAX);
    }
}
