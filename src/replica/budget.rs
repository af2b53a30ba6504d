//! The tenant's one MDE budget, kept in the database every replica shares: the [`Ledger`] the
//! MDE client asks before each call. A reservation is one write transaction (on PostgreSQL
//! serialised across replicas by the write lock `Db::begin` takes; on SQLite by its one
//! writer), so reading the window and recording the call cannot be interleaved with another
//! replica's. No transaction is held across the MDE call itself: the row is written first, the
//! call made after the commit.

use std::time::Duration;

use crate::clock::Timestamp;
use crate::db::{self, Db};
use crate::mde::{Api, Ledger, LedgerError, Limits, Reservation, Share, ledger::LedgerFuture};

/// How often a replica deletes the calls and pauses that no longer count.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// A [`Ledger`] over `mde_calls` and `mde_pauses`.
pub(crate) struct DbLedger {
    db: Db,
    /// When this replica last pruned.
    pruned: std::sync::Mutex<Option<Timestamp>>,
}

impl DbLedger {
    pub(crate) fn new(db: Db) -> Self {
        Self { db, pruned: std::sync::Mutex::new(None) }
    }

    #[tracing::instrument(name = "reserve_mde_call", skip_all, fields(api = api.name()))]
    async fn reserve_in_db(
        &self,
        api: Api,
        limits: Limits,
        share: Share,
        now: Timestamp,
    ) -> Result<Reservation, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        tx.quiet();
        let crowding = db::budget::crowding(&mut tx, api, limits, now).await?;
        let outlook = crowding.outlook(limits, now);
        let ready = crowding.ready(share, limits, now);
        if ready > now {
            // Nothing written: the transaction rolls back as it drops, and no commit wakes the
            // other replicas for nothing.
            return Ok(Reservation { outcome: Err(ready), outlook });
        }
        db::budget::record(&mut tx, api, now).await?;
        if self.prune_due(now) {
            let pruned = db::budget::prune(&mut tx, limits, now).await?;
            tracing::debug!(pruned, "pruned MDE calls and pauses that no longer count");
        }
        tx.commit().await?;
        Ok(Reservation { outcome: Ok(()), outlook })
    }

    #[tracing::instrument(name = "pause_mde_api", skip_all, fields(api = api.name(), until = %until))]
    async fn pause_in_db(&self, api: Api, until: Timestamp) -> Result<(), sqlx::Error> {
        let mut tx = self.db.begin().await?;
        tx.quiet();
        db::budget::pause(&mut tx, api, until).await?;
        tx.commit().await
    }

    /// True at most once per [`PRUNE_EVERY`] of this replica's clock (and at its first call).
    fn prune_due(&self, now: Timestamp) -> bool {
        // One value, replaced whole: poison is harmless.
        let mut last = self.pruned.lock().unwrap_or_else(|e| e.into_inner());
        let due = last.is_none_or(|t| now >= t.plus(PRUNE_EVERY));
        if due {
            *last = Some(now);
        }
        due
    }
}

impl Ledger for DbLedger {
    fn reserve(&self, api: Api, limits: Limits, share: Share, now: Timestamp) -> LedgerFuture<'_, Reservation> {
        Box::pin(async move { self.reserve_in_db(api, limits, share, now).await.map_err(|e| LedgerError::new(&e)) })
    }

    fn pause(&self, api: Api, until: Timestamp) -> LedgerFuture<'_, ()> {
        Box::pin(async move { self.pause_in_db(api, until).await.map_err(|e| LedgerError::new(&e)) })
    }
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod tests;
