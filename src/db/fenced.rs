//! The one UPDATE of a release: set some columns, only while the row still is what the caller
//! read (its status, the claim it holds, ...). Zero rows changed means the fence no longer
//! matched: someone else moved the release or took the claim.

use super::Conn;
use super::releases::col;
use super::sql::Builder;
use crate::clock::Timestamp;
use crate::domain::{ReleaseId, ReleaseStatus};
use sqlx::{Any, Encode, Type};

/// A condition the row must still meet for the update to apply.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Guard<'a> {
    /// `status = s`
    Status(ReleaseStatus),
    /// `lease_owner = claim`: the caller holds the job.
    Owner(&'a str),
    /// The lease is free: no owner, or it lapsed by `now`.
    LeaseFreeAt(Timestamp),
    /// `column IS NULL`
    Null(&'static str),
    /// `column <= t`
    NotAfter(&'static str, Timestamp),
    /// `column = n`
    Equals(&'static str, i64),
    /// A break-glass release.
    BreakGlass,
}

/// The columns an update sets, with their values bound.
pub(crate) struct Sets {
    q: Builder,
    any: bool,
}

impl Sets {
    /// An update that leaves the status alone (the status changes only through
    /// [`Sets::moving_to`]).
    pub(crate) fn new() -> Self {
        Self { q: Builder::new("UPDATE releases SET "), any: false }
    }

    /// The update of a move to `status`: for `db::transition` alone, called by the one
    /// transition path after it checked the move.
    pub(super) fn moving_to(status: ReleaseStatus) -> Self {
        let mut sets = Self::new();
        sets.q.push(col::status).push(" = ").push_bind(status.as_str());
        sets.any = true;
        sets
    }

    fn column(&mut self, column: &'static str) -> &mut Builder {
        assert_ne!(column, col::status, "a status changes only through service::transition");
        if self.any {
            self.q.push(", ");
        }
        self.any = true;
        self.q.push(column).push(" = ")
    }

    /// `column = value`
    pub(crate) fn set<'t, T: Encode<'t, Any> + Type<Any> + 't>(mut self, column: &'static str, v: T) -> Self {
        self.column(column).push_bind(v);
        self
    }

    /// `column = NULL`
    pub(crate) fn clear(mut self, column: &'static str) -> Self {
        self.column(column).push("NULL");
        self
    }

    /// `column = COALESCE(value, column)`: set only when a value is given.
    pub(crate) fn set_some<'t, T: Encode<'t, Any> + Type<Any> + 't>(
        mut self,
        column: &'static str,
        v: Option<T>,
    ) -> Self {
        self.column(column).push("COALESCE(").push_bind(v).push(", ").push(column).push(")");
        self
    }

    /// Releases the worker's claim.
    pub(crate) fn release_lease(self) -> Self {
        self.clear(col::lease_owner).clear(col::lease_expires_at)
    }
}

/// Applies `sets` (plus `updated_at = now`) to release `id` if every guard holds. True when
/// the row changed.
pub(crate) async fn update(
    conn: &mut Conn,
    id: ReleaseId,
    sets: Sets,
    guards: &[Guard<'_>],
    now: Timestamp,
) -> Result<bool, sqlx::Error> {
    let mut q = sets.set(col::updated_at, now).q;
    q.push(" WHERE ").push(col::id).push(" = ").push_bind(id.to_string());
    for g in guards {
        q.push(" AND ");
        match *g {
            Guard::Status(s) => {
                q.push("status = ").push_bind(s.as_str());
            }
            Guard::Owner(claim) => {
                q.push("lease_owner = ").push_bind(claim.to_string());
            }
            Guard::LeaseFreeAt(now) => {
                q.push("(lease_owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at <= ")
                    .push_bind(now)
                    .push(")");
            }
            Guard::Null(column) => {
                q.push(column).push(" IS NULL");
            }
            Guard::NotAfter(column, t) => {
                q.push(column).push(" <= ").push_bind(t);
            }
            Guard::Equals(column, n) => {
                q.push(column).push(" = ").push_bind(n);
            }
            Guard::BreakGlass => {
                q.push("break_glass = 1");
            }
        }
    }
    Ok(q.build()?.execute(conn).await?.rows_affected() == 1)
}
