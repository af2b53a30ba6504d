//! The retry policy: exponential backoff with full jitter, never sooner than MDE's
//! `Retry-After`, and a cap on attempts after which the release fails.

use std::time::Duration;

/// When and whether to try a failed send again.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Delay before the second attempt (before jitter).
    pub base: Duration,
    /// No delay is longer than this (except a longer `Retry-After`).
    pub max: Duration,
    /// Attempts in all, the first included; after the last one fails the release is `failed`.
    pub max_attempts: u32,
}

impl RetryPolicy {
    /// The delay after failed attempt number `attempt` (1-based), or `None` when no attempt is
    /// left. `jitter` in [0, 1) picks a point in the upper half of the backoff window, so
    /// retries spread out but never collapse to zero; `retry_after` is a floor.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let exp = self.base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let ceiling = exp.min(self.max);
        let jittered = ceiling.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
        Some(jittered.max(retry_after.unwrap_or(Duration::ZERO)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: RetryPolicy = RetryPolicy { base: Duration::from_secs(2), max: Duration::from_secs(60), max_attempts: 5 };

    #[test]
    fn delays_grow_exponentially_within_the_jitter_band() {
        assert_eq!(P.delay(1, None, 0.0), Some(Duration::from_secs(1)));
        assert_eq!(P.delay(1, None, 0.999_999).map(|d| d.as_secs()), Some(1));
        assert_eq!(P.delay(2, None, 0.0), Some(Duration::from_secs(2)));
        assert_eq!(P.delay(3, None, 1.0), Some(Duration::from_secs(8)));
    }

    #[test]
    fn delays_are_capped_but_retry_after_is_a_floor() {
        let p = RetryPolicy { max_attempts: 30, ..P };
        assert_eq!(p.delay(20, None, 1.0), Some(Duration::from_secs(60)));
        assert_eq!(p.delay(1, Some(Duration::from_secs(90)), 0.0), Some(Duration::from_secs(90)));
    }

    #[test]
    fn no_delay_after_the_last_attempt() {
        assert!(P.delay(4, None, 0.5).is_some());
        assert_eq!(P.delay(5, None, 0.5), None);
    }
}
