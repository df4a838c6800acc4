//! Which failures are retried, and how long to wait between attempts.
//!
//! Retries happen per HTTP request (not per copy), with exponential backoff and full
//! jitter so that many workers hitting one registry do not retry in lock-step. A
//! `Retry-After` is honoured by the registry's gate (it pauses every request to that
//! registry), so the backoff here only adds spacing on top.
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Delays before each of up to `retries` further attempts.
pub(crate) fn backoff(retries: usize) -> ExponentialBackoff {
    ExponentialBuilder::new()
        .with_jitter()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(20))
        .with_max_times(retries)
        .build()
}

/// Statuses worth another attempt: throttling, timeouts and server errors, including
/// distribution's sporadic 500 when uploads of the same blob race. 501 and 505 mean the
/// server cannot ever do it. Auth failures and not-found never improve by retrying.
pub(crate) fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429) || (status >= 500 && !matches!(status, 501 | 505))
}

/// Answers that mean "this registry is overloaded": pause and slow the whole registry down.
/// A 503 says so only with a `Retry-After`; a bare 503 is a failure like a 502 (load
/// balancers answer it for one bad backend), retried without slowing everyone down.
pub(crate) fn is_throttle(status: u16, has_retry_after: bool) -> bool {
    status == 429 || (status == 503 && has_retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [200, 201, 202, 400, 401, 403, 404, 405, 416, 501, 505] {
            assert!(!retryable_status(s), "{s}");
        }
        assert!(is_throttle(429, false) && is_throttle(429, true) && is_throttle(503, true));
        assert!(!is_throttle(503, false) && !is_throttle(500, true));
    }

    #[test]
    fn backoff_is_bounded() {
        let delays: Vec<Duration> = backoff(6).collect();
        assert_eq!(delays.len(), 6);
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(40)));
    }
}
