//! [`Monotonic`]: a reading of a clock's monotonic time, a type of its own so it is never mixed
//! up with `Instant::now()` (which a test clock does not move).

use std::ops::{Add, AddAssign, Sub};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A point in monotonic time: how long after a fixed origin (the first reading in this
/// process). It never goes back, whatever happens to the wall clock. Only readings of the same
/// [`Clock`](super::Clock) compare meaningfully.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Monotonic(Duration);

impl Monotonic {
    /// The origin, for arithmetic in pure code and tests.
    pub const ORIGIN: Monotonic = Monotonic(Duration::ZERO);

    /// The point `d` after the origin.
    pub const fn after_origin(d: Duration) -> Self {
        Self(d)
    }

    /// How long after the origin this is.
    pub const fn since_origin(self) -> Duration {
        self.0
    }

    /// How long after `earlier` this is; zero when it is not after it.
    pub fn saturating_since(self, earlier: Monotonic) -> Duration {
        self.0.saturating_sub(earlier.0)
    }

    /// The real monotonic time: the OS clock, read through `Instant`.
    pub(super) fn real() -> Self {
        Self(origin().elapsed())
    }

    /// The `Instant` this is on the real monotonic clock; `None` past what `Instant` can hold.
    pub(super) fn to_instant(self) -> Option<Instant> {
        origin().checked_add(self.0)
    }
}

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

impl Add<Duration> for Monotonic {
    type Output = Monotonic;

    /// Saturates at the far future.
    fn add(self, d: Duration) -> Monotonic {
        Monotonic(self.0.saturating_add(d))
    }
}

impl AddAssign<Duration> for Monotonic {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub for Monotonic {
    type Output = Duration;

    /// [`Monotonic::saturating_since`]: zero when `earlier` is not earlier.
    fn sub(self, earlier: Monotonic) -> Duration {
        self.saturating_since(earlier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_arithmetic_saturates_instead_of_panicking() {
        let t = Monotonic::after_origin(Duration::from_secs(5));
        assert_eq!(t + Duration::from_secs(1) - t, Duration::from_secs(1));
        assert_eq!(t - (t + Duration::from_secs(1)), Duration::ZERO);
        assert_eq!((t + Duration::MAX).since_origin(), Duration::MAX);
        assert_eq!((t + Duration::MAX).to_instant(), None);
        assert!(Monotonic::ORIGIN < t);
    }

    #[test]
    fn real_monotonic_time_never_goes_back() {
        let a = Monotonic::real();
        let b = Monotonic::real();
        assert!(b >= a);
    }
}
