//! Time as an argument: the daemon reads "now" from a [`Clock`], so tests can move it.
//!
//! A clock gives wall time (what is stored and shown), monotonic time (what rate windows,
//! token lifetimes and waits measure) and waiting. Everything that waits sleeps on the clock,
//! so a test that advances a [`ManualClock`] wakes it instead of spending real time.

mod manual;
mod monotonic;

pub use manual::ManualClock;
pub use monotonic::Monotonic;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// A wait on a [`Clock`]: completes once the clock reaches the deadline it was made for.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of the current time and of waiting. Logic takes `now` as a parameter; only the
/// edges call this.
pub trait Clock: Send + Sync + 'static {
    /// The current wall time.
    fn now(&self) -> Timestamp;

    /// Monotonic time: never goes back, whatever happens to the wall clock.
    fn monotonic(&self) -> Monotonic;

    /// Completes once [`monotonic`](Self::monotonic) reaches `deadline`; at once if it has.
    fn sleep_until(&self, deadline: Monotonic) -> Sleep;

    /// Completes once `d` has passed on this clock.
    fn sleep(&self, d: Duration) -> Sleep {
        self.sleep_until(self.monotonic() + d)
    }
}

/// The wall clock, the OS monotonic clock, and tokio's timers.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(OffsetDateTime::now_utc())
    }

    fn monotonic(&self) -> Monotonic {
        Monotonic::real()
    }

    fn sleep_until(&self, deadline: Monotonic) -> Sleep {
        match deadline.to_instant() {
            Some(at) => Box::pin(tokio::time::sleep_until(at.into())),
            None => Box::pin(std::future::pending()),
        }
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// A point in time in UTC, to the millisecond: how dualkey stores, compares and shows times.
/// Stored as INTEGER milliseconds since the Unix epoch; shown (JSON, logs, audit details) as
/// RFC 3339 with milliseconds, e.g. `2026-11-28T13:08:21.123Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, sqlx::Type)]
#[sqlx(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// From milliseconds since the Unix epoch.
    pub const fn from_unix_ms(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn unix_ms(self) -> i64 {
        self.0
    }

    /// From a date-time, cut to the millisecond.
    pub fn from_datetime(t: OffsetDateTime) -> Self {
        Self((t.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// As a date-time in UTC.
    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// An RFC 3339 time in any offset, cut to the millisecond.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok().map(Self::from_datetime)
    }

    /// RFC 3339 in UTC with millisecond precision.
    pub fn rfc3339(self) -> String {
        let fmt =
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
        self.to_datetime().format(&fmt).unwrap_or_default()
    }

    /// `self + d`, saturating at the far future.
    pub fn plus(self, d: std::time::Duration) -> Self {
        Self(self.0.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
    }

    /// `self - d`, saturating at the far past.
    pub fn minus(self, d: std::time::Duration) -> Self {
        Self(self.0.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
    }

    /// How long after `earlier` this is; zero when it is not after it.
    pub fn since(self, earlier: Timestamp) -> std::time::Duration {
        std::time::Duration::from_millis(self.0.saturating_sub(earlier.0).max(0) as u64)
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        Self::from_datetime(t)
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("RFC 3339 in UTC with milliseconds"))
            .examples([serde_json::json!("2026-11-28T13:30:28.890Z")])
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_render_as_rfc3339_utc() {
        assert_eq!(Timestamp::EPOCH.to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Timestamp::from_unix_ms(1_700_000_000_123).to_string(), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn timestamps_keep_milliseconds_and_saturate() {
        let t = Timestamp::from_unix_ms(1_700_000_000_123);
        assert_eq!(t.rfc3339(), "2023-11-14T22:13:20.123Z");
        assert_eq!(Timestamp::from(t.to_datetime()), t);
        assert_eq!(t.plus(std::time::Duration::from_secs(1)).unix_ms(), 1_700_000_001_123);
        assert_eq!(t.plus(std::time::Duration::MAX).unix_ms(), i64::MAX);
        assert_eq!(t.minus(std::time::Duration::from_millis(123)).since(t), std::time::Duration::ZERO);
        assert_eq!(t.since(t.minus(std::time::Duration::from_millis(5))), std::time::Duration::from_millis(5));
        assert_eq!(serde_json::to_value(t).unwrap(), "2023-11-14T22:13:20.123Z");
    }

    #[tokio::test]
    async fn the_system_clock_waits_on_real_time() {
        let clock = SystemClock;
        let start = clock.monotonic();
        clock.sleep(Duration::from_millis(5)).await;
        assert!(clock.monotonic() - start >= Duration::from_millis(5));
        clock.sleep_until(start).await;
    }
}
