//! The release worker: takes approved releases, sends them to MDE exactly once, follows the
//! MDE action to its end, and records every step in the audit chain.
//!
//! Each job is claimed with a lease in one committed statement, renewed every third of the
//! lease while the job is worked, MDE calls included (`heartbeat`); MDE is called outside any
//! transaction; the result is written with an update fenced on the claim. A worker that dies
//! mid-call stops renewing: its `dispatching` release is claimed again within one lease, and
//! before sending again the new claim looks for the action the dead one may have created.
//!
//! Sending, following actions and re-isolating are separate duties ([`Job`]), each a task of
//! its own in [`Worker::run`] with its own claim loop and waits (`duty`): a backlog of sends, or
//! a send waiting for the unisolate budget, never delays a poll or a due re-isolation.

mod comment;
mod dispatch;
mod duty;
mod heartbeat;
mod poll;
mod recheck;
mod reisolate;
mod retry;
mod scan;

pub use comment::build as build_comment;
pub use retry::RetryPolicy;

use crate::audit::{self, Actor, AuditEvent, Subject};
use crate::clock::Timestamp;
use crate::db::{
    self,
    worker::{Claim, Job},
};
use crate::domain::ReleaseStatus;
use crate::mde::MdeClient;
use crate::service::transition::{self, At, Change};
use crate::state::AppState;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How the worker paces itself.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub retry: RetryPolicy,
    /// How long a claim holds without renewal. The heartbeat renews it every third of it while
    /// the job is worked, so it needs to outlast no MDE call, only a stalled or dead worker.
    pub lease: Duration,
    /// How often MDE's Unisolate list is read while actions are in flight (one read follows
    /// every dispatched release).
    pub poll_interval: Duration,
    /// Longest sleep between looks at the database (approvals by other processes).
    pub scan_interval: Duration,
}

impl WorkerConfig {
    /// How the worker paces itself, from `[mde]`.
    pub fn from_settings(s: &crate::settings::MdeSettings) -> Self {
        Self {
            retry: RetryPolicy { base: s.backoff_base.get(), max: s.backoff_max.get(), max_attempts: s.max_attempts },
            lease: s.lease.get(),
            poll_interval: s.poll_interval.get(),
            scan_interval: s.scan_interval.get(),
        }
    }
}

/// One worker. Cheap to clone.
#[derive(Clone)]
pub struct Worker {
    state: AppState,
    mde: Arc<MdeClient>,
    config: WorkerConfig,
    name: Arc<str>,
    /// Signalled when a duty finished a job, so idle duties look again at what is due.
    changed: Arc<Notify>,
    /// The view of MDE the re-check and the scan read (the daemon's own, shared with the API).
    fleet: Arc<crate::fleet::Fleet>,
    /// When this worker last scanned MDE's Unisolates.
    last_scan: Arc<std::sync::Mutex<Option<Timestamp>>>,
    /// Where bypasses are looked for from (read once).
    bypass_since: Arc<tokio::sync::OnceCell<Timestamp>>,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Worked,
    Idle,
}

impl Worker {
    pub fn new(state: AppState, mde: Arc<MdeClient>, config: WorkerConfig) -> Self {
        let name = format!("worker-{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        state.jobs.add(crate::replica::jobs::Job::BypassScan);
        let fleet = state.fleet.clone().unwrap_or_else(|| {
            let config = crate::fleet::FleetConfig::from_settings(&state.settings.mde);
            Arc::new(crate::fleet::Fleet::new(mde.clone(), state.clock.clone(), config))
        });
        Self {
            state,
            mde,
            config,
            name: name.into(),
            changed: Arc::new(Notify::new()),
            fleet,
            last_scan: Arc::default(),
            bypass_since: Arc::default(),
        }
    }

    fn last_scan(&self) -> std::sync::MutexGuard<'_, Option<Timestamp>> {
        self.last_scan.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs every duty as a task of its own until `stop` is cancelled. Each duty finishes the
    /// job it holds (the caller bounds how long it waits) and claims none after `stop`.
    pub async fn run(self, stop: CancellationToken) {
        tracing::info!(worker = %self.name, "release worker started");
        let mut duties = tokio::task::JoinSet::new();
        for job in Job::ALL {
            duties.spawn(duty::run(self.clone(), job, stop.clone()));
        }
        while let Some(ended) = duties.join_next().await {
            if let Err(e) = ended {
                tracing::error!(worker = %self.name, error = %e, "a worker duty ended abnormally");
            }
        }
        tracing::info!(worker = %self.name, "release worker stopped");
    }

    /// Works until nothing is due now; returns the number of jobs done. Lets tests drive the
    /// worker deterministically (the duties take turns: a send, else a poll, else a
    /// re-isolation).
    pub async fn run_until_idle(&self) -> anyhow::Result<usize> {
        let mut done = 0;
        while self.step().await? == Step::Worked {
            done += 1;
        }
        Ok(done)
    }

    /// Claims and works one job: a send if one is due, else a poll, else a re-isolation.
    pub async fn step(&self) -> anyhow::Result<Step> {
        for job in Job::ALL {
            if self.work(job).await? == Step::Worked {
                return Ok(Step::Worked);
            }
        }
        Ok(Step::Idle)
    }

    /// Claims and works one job of this kind, if one is due.
    async fn work(&self, job: Job) -> anyhow::Result<Step> {
        if job == Job::Poll {
            return scan::run(self).await;
        }
        let Some(claim) = self.claim(job).await? else { return Ok(Step::Idle) };
        let duty = async {
            match job {
                Job::Dispatch => dispatch::run(self, claim.clone()).await,
                Job::Poll => poll::run(self, claim.clone()).await,
                Job::Reisolate => reisolate::run(self, claim.clone()).await,
            }
        };
        heartbeat::Heartbeat::of(self).beating(&claim, duty).await?;
        Ok(Step::Worked)
    }

    /// How long the duty for `job` may sleep: until its next job is due, at most a scan.
    async fn idle_wait(&self, job: Job) -> Duration {
        let next = match job {
            Job::Poll => scan::due_at(self).await.ok(),
            _ => match self.state.db.reader().await {
                Ok(mut conn) => db::worker::next_due(&mut conn, job).await.ok().flatten(),
                Err(_) => None,
            },
        };
        let now = self.state.clock.now();
        match next {
            Some(t) if t > now => t.since(now).min(self.config.scan_interval),
            Some(_) => Duration::from_millis(10),
            None => self.config.scan_interval,
        }
    }

    /// Claims the most overdue job of this kind with a lease, in one committed transaction
    /// (under SQLite's write lock, so the read and the fenced write cannot be overtaken). A send
    /// is the move `approved -> dispatching` (or the reclaim of a lapsed `dispatching` lease),
    /// so it goes through the transition path; polls and re-isolations only take the lease. The
    /// claim starts held (`lost` not cancelled) until a renewal finds the job taken over.
    async fn claim(&self, job: Job) -> anyhow::Result<Option<Claim>> {
        let now = self.state.clock.now();
        let lease_until = now.plus(self.config.lease);
        let token = format!("{}/{}", self.name, uuid::Uuid::new_v4().simple());
        let mut tx = self.state.db.begin().await?;
        let Some(due) = db::worker::next(&mut tx, job, now).await? else { return Ok(None) };
        let mut claim = Claim { claim: token.clone(), lost: CancellationToken::new(), ..due.claim.clone() };
        if job == Job::Dispatch {
            let attempts = due.claim.attempts;
            let (change, holder) = match due.claim.status {
                ReleaseStatus::Dispatching => {
                    (Change::Reclaim { claim: &token, lease_until, attempts }, due.lease_owner.as_deref())
                }
                _ => (Change::Claim { claim: &token, lease_until, attempts }, None),
            };
            let at =
                At { id: due.claim.id, machine_id: &due.claim.machine_id, status: due.claim.status, claim: holder };
            (claim.attempts, claim.status) = (attempts + 1, ReleaseStatus::Dispatching);
            let event = AuditEvent::DispatchClaimed { attempt: claim.attempts, worker: self.name.to_string() };
            match transition::apply(&mut tx, &at, change, Actor::System, &event, now).await {
                Ok(_) => {}
                Err(e) if e.is_lost() => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        } else if !db::worker::take_lease(&mut tx, &due, &token, now, lease_until).await? {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(claim))
    }

    /// Moves the release `c` holds through the transition path, fenced on the claim. False when
    /// the claim was lost (another worker owns the job): nothing is written and the caller
    /// drops its transaction.
    async fn moved(
        &self,
        tx: &mut crate::db::Tx,
        c: &Claim,
        change: Change<'_>,
        event: &AuditEvent,
        now: Timestamp,
    ) -> anyhow::Result<bool> {
        let at = At { id: c.id, machine_id: &c.machine_id, status: c.status, claim: Some(&c.claim) };
        match transition::apply(tx, &at, change, Actor::System, event, now).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_lost() => {
                tracing::warn!(release_id = %c.id, "lost the claim; not recording `{}`", change.mv());
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn audit(&self, tx: &mut crate::db::Tx, c: &Claim, event: &AuditEvent) -> Result<(), sqlx::Error> {
        let rid = c.id.to_string();
        let subject = Subject { release_id: Some(&rid), machine_id: Some(c.machine_id.as_str()) };
        audit::record(tx, self.state.clock.now(), Actor::System, subject, event).await.map(|_| ())
    }

    fn jitter() -> f64 {
        rand::random::<f64>()
    }
}
