//! Periodic jobs run once across the replicas of one database, not once per replica: each
//! job has a lease in `job_leases` of `mde.lease`, which one replica takes and renews every
//! second (so a lease given up is taken within a second); the others follow. A replica that dies stops renewing, and another takes the
//! job once the lease lapsed, or at once when the dead holder was a process on the same host
//! (its pid is gone). A clean shutdown gives the leases up.
//!
//! A job's task runs only while this replica leads it ([`Jobs::led`]); losing the lease
//! cancels it. Every job is safe to overlap for the moment a lease changes hands: each of
//! their writes is fenced in the database (a release moves once, an outbox row is delivered
//! once, a checkpoint is keyed by its size).

use crate::clock::Timestamp;
use crate::db::Db;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often a replica takes or renews its jobs' leases.
const ROUND: Duration = Duration::from_secs(1);
/// The task name of the lease rounds in `/readyz`.
const TASK: &str = "job_leases";

/// A periodic job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Job {
    /// Expiring pending releases past their time (and sweeping console sign-ins).
    Expiry,
    /// Signing checkpoints of the audit log, with `[audit]` keys.
    Checkpoints,
    /// The worker's scan of MDE's actions: following sends, finding bypasses, re-isolating.
    BypassScan,
    /// Sending the notification outbox, with `[notify]`.
    Delivery,
    /// Forwarding the audit trail off the host, with `[[audit.forward]]`.
    Forwarding,
}

impl Job {
    /// The name in `job_leases` and in `/readyz`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Job::Expiry => "expiry",
            Job::Checkpoints => "checkpoints",
            Job::BypassScan => "bypass_scan",
            Job::Delivery => "delivery",
            Job::Forwarding => "forwarding",
        }
    }
}

/// This replica's part in each periodic job it runs.
#[derive(Debug)]
pub(crate) struct Jobs {
    /// `host/pid/random`: unique per process, and says which host and process hold a lease.
    holder: String,
    lease: Duration,
    /// The jobs this replica is configured to run, and whether it leads each.
    led: watch::Sender<BTreeMap<Job, bool>>,
}

impl Jobs {
    /// The jobs `jobs` of this process, each held for `lease` at a time.
    pub(crate) fn new(jobs: impl IntoIterator<Item = Job>, lease: Duration) -> Self {
        let holder = format!("{}/{}/{:08x}", hostname(), std::process::id(), rand::random::<u32>());
        let led = watch::Sender::new(jobs.into_iter().map(|j| (j, false)).collect());
        Self { holder, lease, led }
    }

    /// True while this replica leads `job`.
    pub(crate) fn leads(&self, job: Job) -> bool {
        self.led.borrow().get(&job).copied().unwrap_or(false)
    }

    /// `"leader"` or `"follower"` for each job this replica runs, for `/readyz`.
    pub(crate) fn roles(&self) -> BTreeMap<&'static str, &'static str> {
        self.led.borrow().iter().map(|(j, led)| (j.name(), if *led { "leader" } else { "follower" })).collect()
    }

    /// Takes or renews the lease of every job of this replica, in one transaction. A job whose
    /// holder is a dead process of this host is taken over at once.
    pub(crate) async fn round(&self, db: &Db, now: Timestamp) -> Result<(), sqlx::Error> {
        let jobs: Vec<Job> = self.led.borrow().keys().copied().collect();
        if jobs.is_empty() {
            return Ok(());
        }
        let until = now.plus(self.lease);
        let mut tx = db.begin().await?;
        tx.quiet();
        let mut led = BTreeMap::new();
        for job in jobs {
            let mut leads = crate::db::jobs::take(&mut tx, job.name(), &self.holder, now, until).await?;
            if !leads
                && let Some(other) = crate::db::jobs::holder(&mut tx, job.name()).await?
                && is_dead_here(&other)
            {
                leads = crate::db::jobs::take_over(&mut tx, job.name(), &other, &self.holder, until).await?;
                if leads {
                    tracing::info!(job = job.name(), dead = %other, "took over a job from a process that is gone");
                }
            }
            led.insert(job, leads);
        }
        tx.commit().await?;
        self.led.send_if_modified(|old| {
            let changed = *old != led;
            for (job, leads) in &led {
                if old.get(job) != Some(leads) {
                    tracing::info!(job = job.name(), role = if *leads { "leader" } else { "follower" }, "job role");
                }
            }
            *old = led;
            changed
        });
        Ok(())
    }

    /// This replica runs `job` too (the release worker adds the scan when it is built).
    pub(crate) fn add(&self, job: Job) {
        self.led.send_if_modified(|l| {
            l.entry(job).or_insert(false);
            false
        });
    }

    /// True when this replica leads `job`, trying to take it first when it does not (a job the
    /// worker added since the last round, or one given up a moment ago).
    pub(crate) async fn lead_now(&self, db: &Db, job: Job, now: Timestamp) -> Result<bool, sqlx::Error> {
        if !self.leads(job) {
            self.round(db, now).await?;
        }
        Ok(self.leads(job))
    }

    /// Renews the leases every [`ROUND`] until `stop`, then gives them up. A round
    /// that fails (the database is unreachable) makes this replica follow every job: a lease
    /// it cannot renew is soon another's.
    pub(crate) async fn run(
        &self,
        db: Db,
        clock: crate::clock::SharedClock,
        tasks: Arc<crate::tasks::Tasks>,
        stop: CancellationToken,
    ) {
        tasks.started(TASK);
        loop {
            let round = self.round(&db, clock.now()).await;
            tasks.ended(TASK, &round, clock.now());
            if let Err(e) = round {
                tracing::warn!(error = %e, "renewing the periodic jobs' leases failed; following until it works");
                self.led.send_if_modified(|old| {
                    let changed = old.values().any(|l| *l);
                    old.values_mut().for_each(|l| *l = false);
                    changed
                });
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = clock.sleep(ROUND.min(self.lease / 3)) => {}
            }
        }
        self.resign(&db).await;
    }

    /// Gives up this replica's leases.
    async fn resign(&self, db: &Db) {
        let resigned = async {
            let mut tx = db.begin().await?;
            tx.quiet();
            let n = crate::db::jobs::resign(&mut tx, &self.holder).await?;
            tx.commit().await.map(|()| n)
        };
        match resigned.await {
            Ok(n) if n > 0 => tracing::info!(jobs = n, "gave up the periodic jobs for another replica"),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not give up the periodic jobs; they move when the lease lapses")
            }
        }
        self.led.send_modify(|old| old.values_mut().for_each(|l| *l = false));
    }

    /// Runs `task` while this replica leads `job`, until `stop`: started when the lease is
    /// taken, cancelled (through the token it is given) when it is lost, started again when
    /// it is taken again.
    pub(crate) async fn led<F, Fut>(&self, job: Job, stop: CancellationToken, mut task: F)
    where
        F: FnMut(CancellationToken) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut led = self.led.subscribe();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                r = led.wait_for(|l| l.get(&job).copied().unwrap_or(false)) => if r.is_err() { return },
            }
            let lost = stop.child_token();
            let watch_lost = async {
                let _ = led.wait_for(|l| !l.get(&job).copied().unwrap_or(false)).await;
                lost.cancel();
            };
            let run = task(lost.clone());
            tokio::pin!(run);
            tokio::select! {
                () = &mut run => {}
                () = watch_lost => run.await,
            }
            lost.cancel();
            if stop.is_cancelled() {
                return;
            }
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .unwrap_or_else(|| "host".into())
}

/// True when `holder` names a process of this host (other than this one) that no longer runs.
fn is_dead_here(holder: &str) -> bool {
    let mut parts = holder.split('/');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else { return false };
    let Ok(pid) = pid.parse::<u32>() else { return false };
    host == hostname()
        && pid != std::process::id()
        && std::path::Path::new("/proc/self").exists()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_dead_here_only_when_its_host_is_this_one_and_its_pid_is_gone() {
        let me = hostname();
        assert!(!is_dead_here(&format!("{me}/{}/00000000", std::process::id())), "this process lives");
        assert!(is_dead_here(&format!("{me}/4000000000/00000000")), "no such pid");
        assert!(!is_dead_here("another-host/4000000000/00000000"), "another host may still run it");
        assert!(!is_dead_here("garbage"));
    }
}
