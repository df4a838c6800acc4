//! Which failures are retried, and how long to wait between attempts.
//!
//! Retries happen per HTTP request (not per copy), with exponential backoff and jitter so
//! that many workers hitting one registry do not retry in lock-step. Failures (5xx,
//! timeouts, resets, stalls) are retried a number of times; throttling (429, 503 with
//! `Retry-After`) for as long as the retry timeout allows, each retry waiting at least the
//! `Retry-After` the registry asked for: a registry that throttles is alive and will take
//! the request later, and failing on it would make a rerun do the same work again.
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Delays before each of up to `retries` further attempts after failures: short, so that a
/// dead host fails within a minute or so per request.
pub(crate) fn failures(retries: usize) -> ExponentialBackoff {
    ExponentialBuilder::new()
        .with_jitter()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(10))
        .with_max_times(retries)
        .build()
}

/// Delays before retries of a throttled request, as many as the retry timeout allows.
/// The first are short: the host's controller already paces every request, retries
/// included, so a registry that throttles a share of requests at random should not cost
/// each of them half a second; a registry that goes on throttling meets growing delays.
pub(crate) fn throttles() -> ExponentialBackoff {
    ExponentialBuilder::new()
        .with_jitter()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(20))
        .without_max_times()
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
        let delays: Vec<Duration> = failures(8).collect();
        assert_eq!(delays.len(), 8);
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(20)));
        // Throttled requests wait as long as the retry timeout allows: the delays go on.
        let throttled: Vec<Duration> = throttles().take(100).collect();
        assert_eq!(throttled.len(), 100);
        assert!(throttled.iter().all(|d| *d <= Duration::from_secs(40)));
    }
}
