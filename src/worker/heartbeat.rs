//! Keeping a claim while its job is worked. The duty runs inside [`Heartbeat::beating`], which
//! renews the claim's lease every third of the lease on the worker's clock, each renewal a
//! short transaction of its own, concurrently with whatever the duty awaits (an MDE call longer
//! than the lease, a wait of an hour for rate budget). So the lease can be short: a worker that
//! dies stops renewing and its job is taken over within one lease of its last beat, whatever
//! `request_timeout` is. A renewal that finds the job in another worker's hands cancels the
//! claim's `lost`, and the duty sends nothing more ([`Heartbeat::confirm`] right before a call
//! that acts on a device). A renewal that fails on storage is tried again at the next beat: two
//! in a row may fail before the lease lapses.

use super::Worker;
use crate::clock::Clock;
use crate::db::{self, Db, worker::Claim};
use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

/// How often a held claim is renewed: every third of the lease.
pub(super) fn interval(lease: Duration) -> Duration {
    lease / 3
}

/// Renews the leases of one worker's claims: its database, its clock and its lease.
pub(super) struct Heartbeat<'a> {
    db: &'a Db,
    clock: &'a dyn Clock,
    lease: Duration,
}

impl<'a> Heartbeat<'a> {
    pub(super) fn of(w: &'a Worker) -> Self {
        Self { db: &w.state.db, clock: w.state.clock.as_ref(), lease: w.config.lease }
    }

    /// Runs `duty` while `c`'s lease is renewed every [`interval`], and returns what it returns.
    /// The beats end with the duty, in the same task: no renewal is written after its last write.
    pub(super) async fn beating<T>(&self, c: &Claim, duty: impl Future<Output = T>) -> T {
        tokio::select! {
            biased;
            out = duty => out,
            never = self.beat(c) => match never {},
        }
    }

    /// Renews the lease now, right before a call that acts on the device (unisolate, isolate):
    /// true when the claim is still this worker's, which then holds it for a whole lease from
    /// now while the heartbeat goes on. False, with the claim marked lost, when another worker
    /// took the job over: the caller must not send. A storage failure is an error: a worker
    /// that cannot tell whether it holds the claim does not send.
    pub(super) async fn confirm(&self, c: &Claim) -> anyhow::Result<bool> {
        if c.lost.is_cancelled() {
            return Ok(false);
        }
        if self.renew(c).await? {
            return Ok(true);
        }
        Self::mark_lost(c);
        Ok(false)
    }

    #[tracing::instrument(name = "heartbeat", skip_all, fields(release_id = %c.id))]
    async fn beat(&self, c: &Claim) -> Infallible {
        let mut failing = false;
        loop {
            self.clock.sleep(interval(self.lease)).await;
            match self.renew(c).await {
                Ok(true) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!("the lease is renewed again");
                    }
                }
                Ok(false) => break,
                Err(e) => {
                    self.db.write_health().failed(e.as_ref());
                    if !std::mem::replace(&mut failing, true) {
                        let error = format!("{e:#}");
                        tracing::warn!(%error, "could not renew the lease; trying again at the next beat");
                    }
                }
            }
        }
        Self::mark_lost(c);
        std::future::pending().await
    }

    /// Extends the lease to a whole lease from now, in a transaction of its own. False when the
    /// job is no longer this claim's.
    async fn renew(&self, c: &Claim) -> anyhow::Result<bool> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        tx.quiet();
        let held = db::worker::renew(&mut tx, c, now, now.plus(self.lease)).await?;
        tx.commit().await?;
        Ok(held)
    }

    fn mark_lost(c: &Claim) {
        if !c.lost.is_cancelled() {
            tracing::warn!(release_id = %c.id, "another worker took the job over; sending nothing more for this claim");
            c.lost.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, Monotonic, Timestamp};
    use crate::domain::{MachineId, ReleaseId, ReleaseStatus};
    use tokio_util::sync::CancellationToken;

    const LEASE: Duration = Duration::from_secs(30);
    /// Only bounds a broken heartbeat's hang; every wait below ends long before it.
    const HANG_GUARD: Duration = Duration::from_secs(10);

    #[test]
    fn a_claim_is_renewed_every_third_of_its_lease() {
        assert_eq!(interval(LEASE), Duration::from_secs(10));
        assert_eq!(interval(Duration::from_secs(3)), Duration::from_secs(1));
    }

    /// A migrated database in a directory kept until the process ends, holding one
    /// `dispatching` release claimed by `worker-a` with a lease from `now`.
    async fn held(now: Timestamp) -> (Db, Claim) {
        let dir = tempfile::tempdir().unwrap().keep();
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        let db = Db::connect(&crate::settings::DatabaseSettings { url, ..Default::default() }).await.unwrap();
        db.migrate().await.unwrap();
        let c = Claim {
            id: ReleaseId::new(),
            machine_id: MachineId::parse(&"ab".repeat(20)).unwrap(),
            claim: "worker-a/1".into(),
            status: ReleaseStatus::Dispatching,
            attempts: 1,
            mde_action_id: None,
            mde_action_status: None,
            reisolation_attempts: 0,
            lost: CancellationToken::new(),
        };
        let mut tx = db.begin().await.unwrap();
        sqlx::query(
            "INSERT INTO releases (id, machine_id, comment, status, requested_by, requested_at, expires_at,
                                   approvals_required, approved_at, attempts, updated_at, lease_owner, lease_expires_at)
             VALUES ($1, $2, 'reimaged', 'dispatching', 'alice', 0, 1, 1, 0, 1, 0, $3, $4)",
        )
        .bind(c.id.to_string())
        .bind(c.machine_id.as_str())
        .bind(&c.claim)
        .bind(now.plus(LEASE))
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        (db, c)
    }

    async fn lease_of(db: &Db, c: &Claim) -> (Option<String>, Option<Timestamp>) {
        let mut conn = db.reader().await.unwrap();
        sqlx::query_as("SELECT lease_owner, lease_expires_at FROM releases WHERE id = $1")
            .bind(c.id.to_string())
            .fetch_one(&mut *conn)
            .await
            .unwrap()
    }

    async fn execute(db: &Db, sql: &str) {
        let mut tx = db.begin().await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
    }

    /// Moves the clock to the heartbeat's next beat and waits until it sleeps again, past `after`
    /// (the beat is written by then); returns its new deadline.
    async fn next_beat(clock: &ManualClock, after: Monotonic) -> Monotonic {
        clock.advance_to(after);
        let asleep = clock.wait_for_sleeper_matching(|d| d > after);
        tokio::time::timeout(HANG_GUARD, asleep).await.expect("the heartbeat sleeps until its next beat")
    }

    #[tokio::test]
    async fn a_duty_that_takes_three_leases_keeps_its_claim_and_the_beats_end_with_it() {
        let clock = ManualClock::new();
        let (db, c) = held(clock.now()).await;
        let heart = Heartbeat { db: &db, clock: &clock, lease: LEASE };
        let (finish, finished) = tokio::sync::oneshot::channel::<&str>();
        let duty = heart.beating(&c, async { finished.await.unwrap() });
        tokio::pin!(duty);
        let beats = async {
            let mut beat = clock.wait_for_sleeper().await;
            for _ in 0..9 {
                let before = lease_of(&db, &c).await.1.unwrap();
                beat = next_beat(&clock, beat).await;
                let (owner, until) = lease_of(&db, &c).await;
                assert_eq!(owner.as_deref(), Some("worker-a/1"));
                assert!(until.unwrap() > before, "each beat moves the lease forward");
                assert!(until.unwrap() >= clock.now().plus(LEASE - Duration::from_secs(1)), "a whole lease ahead");
            }
        };
        tokio::select! {
            _ = &mut duty => panic!("the duty ended before it was told to"),
            () = beats => {}
        }
        assert!(!c.lost.is_cancelled());
        finish.send("recorded").unwrap();
        assert_eq!(duty.await, "recorded", "the duty's own result");
        assert_eq!(clock.next_deadline(), None, "no beat after the duty ended");
    }

    #[tokio::test]
    async fn a_renewal_that_finds_another_owner_marks_the_claim_lost_and_stops() {
        let clock = ManualClock::new();
        let (db, c) = held(clock.now()).await;
        let heart = Heartbeat { db: &db, clock: &clock, lease: LEASE };
        assert!(heart.confirm(&c).await.unwrap(), "still ours");
        let duty = heart.beating(&c, async {
            c.lost.cancelled().await;
            "stopped"
        });
        tokio::pin!(duty);
        let takeover = async {
            let beat = clock.wait_for_sleeper().await;
            execute(&db, "UPDATE releases SET lease_owner = 'worker-b/2'").await;
            clock.advance_to(beat);
        };
        tokio::select! {
            _ = &mut duty => panic!("lost before the takeover"),
            () = takeover => {}
        }
        assert_eq!(tokio::time::timeout(HANG_GUARD, duty).await.expect("the duty sees the loss"), "stopped");
        assert!(!heart.confirm(&c).await.unwrap(), "a lost claim is never confirmed");
        assert_eq!(lease_of(&db, &c).await.0.as_deref(), Some("worker-b/2"), "the new owner's lease is untouched");
    }

    #[tokio::test]
    async fn a_lapsed_lease_nobody_took_over_is_renewed_and_a_released_one_is_not() {
        let clock = ManualClock::new();
        let (db, c) = held(clock.now()).await;
        let heart = Heartbeat { db: &db, clock: &clock, lease: LEASE };
        // The host slept through the lease: still the only holder, so it holds on.
        clock.advance(3 * LEASE);
        assert!(heart.confirm(&c).await.unwrap());
        assert!(lease_of(&db, &c).await.1.unwrap() > clock.now());
        // The claim's own last write released the lease: nothing to renew any more.
        execute(&db, "UPDATE releases SET lease_owner = NULL, lease_expires_at = NULL").await;
        assert!(!heart.confirm(&c).await.unwrap());
        assert_eq!(lease_of(&db, &c).await, (None, None));
    }

    #[tokio::test]
    async fn a_renewal_that_fails_is_tried_again_at_the_next_beat_and_the_claim_is_kept() {
        let clock = ManualClock::new();
        let (db, c) = held(clock.now()).await;
        let heart = Heartbeat { db: &db, clock: &clock, lease: LEASE };
        let duty = heart.beating(&c, std::future::pending::<()>());
        tokio::pin!(duty);
        let beats = async {
            execute(&db, "CREATE TRIGGER refuse BEFORE UPDATE ON releases BEGIN SELECT RAISE(ABORT, 'refused'); END")
                .await;
            let before = lease_of(&db, &c).await.1;
            let beat = next_beat(&clock, clock.wait_for_sleeper().await).await;
            let beat = next_beat(&clock, beat).await;
            assert_eq!(lease_of(&db, &c).await.1, before, "two failed renewals wrote nothing");
            assert!(!c.lost.is_cancelled(), "a failed renewal is not a lost claim");
            execute(&db, "DROP TRIGGER refuse").await;
            next_beat(&clock, beat).await;
            assert!(lease_of(&db, &c).await.1 > before, "renewed at the next beat");
        };
        tokio::select! {
            () = &mut duty => unreachable!(),
            () = beats => {}
        }
        assert!(!c.lost.is_cancelled());
    }
}
