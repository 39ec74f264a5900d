//! The retry policy as a pure function: when, if ever, a failed attempt is made again.

use std::time::Duration;

use crate::domain::RetryPolicy;

/// Longest a `Retry-After` answer may hold a delivery back.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Spread of the delay, as a fraction: ±10%.
pub const JITTER: f64 = 0.10;

/// The delay before the next attempt after failure `failure` (1-based, counted within the
/// current schedule), or `None` when the policy is exhausted.
///
/// `jitter` is a draw in `[-1, 1]` (the caller rolls it, so this stays pure and testable).
/// `retry_after` is the receiver's `Retry-After` on a 429 or 503: the delay is then at least
/// that long, capped at [`MAX_RETRY_AFTER`].
pub fn next_delay(
    policy: &RetryPolicy,
    failure: u32,
    jitter: f64,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let base = Duration::from_secs(u64::from(policy.delay_after_failure(failure)?));
    let factor = 1.0 + JITTER * jitter.clamp(-1.0, 1.0);
    let jittered = base.mul_f64(factor);
    let floor = retry_after.map_or(Duration::ZERO, |d| d.min(MAX_RETRY_AFTER));
    Some(jittered.max(floor))
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date (relative to `now`).
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    #[test]
    fn follows_the_policy_then_gives_up() {
        assert_eq!(
            next_delay(&policy(), 1, 0.0, None),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            next_delay(&policy(), 3, 0.0, None),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            next_delay(&policy(), 6, 0.0, None),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(next_delay(&policy(), 7, 0.0, None), None);
        assert_eq!(
            next_delay(&RetryPolicy::parse(&[]).unwrap(), 1, 0.0, None),
            None
        );
    }

    #[test]
    fn retry_after_extends_but_is_capped_at_an_hour() {
        let long = Some(Duration::from_secs(90));
        assert_eq!(
            next_delay(&policy(), 1, 0.0, long),
            Some(Duration::from_secs(90))
        );
        let huge = Some(Duration::from_secs(86_400));
        assert_eq!(next_delay(&policy(), 1, 0.0, huge), Some(MAX_RETRY_AFTER));
        // A Retry-After shorter than the policy's delay does not shorten it.
        assert_eq!(
            next_delay(&policy(), 5, 0.0, long),
            Some(Duration::from_secs(1800))
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(0))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    proptest! {
        #[test]
        fn jitter_stays_within_ten_percent(
            delays in proptest::collection::vec(1u32..=86_400, 1..=10),
            failure in 1u32..=10,
            jitter in -1.0f64..=1.0,
        ) {
            let policy = RetryPolicy::from_stored(delays.clone());
            match (next_delay(&policy, failure, jitter, None), delays.get(failure as usize - 1)) {
                (Some(delay), Some(&base)) => {
                    let base = f64::from(base);
                    prop_assert!(delay.as_secs_f64() >= base * 0.9 - 1e-6);
                    prop_assert!(delay.as_secs_f64() <= base * 1.1 + 1e-6);
                }
                (None, None) => {}
                (got, want) => prop_assert!(false, "got {got:?} for policy entry {want:?}"),
            }
        }

        #[test]
        fn retry_after_is_a_floor_never_above_an_hour(
            failure in 1u32..=6, jitter in -1.0f64..=1.0, wait in 0u64..=200_000,
        ) {
            let delay = next_delay(&policy(), failure, jitter, Some(Duration::from_secs(wait))).unwrap();
            prop_assert!(delay >= Duration::from_secs(wait).min(MAX_RETRY_AFTER));
            let without = next_delay(&policy(), failure, jitter, None).unwrap();
            prop_assert!(delay <= without.max(MAX_RETRY_AFTER));
        }
    }
}
