//! The per-registry gate every request passes: pause, concurrency, rate.
//!
//! Concurrency is an adaptive limit of its own (`concurrency.rs`); this module paces the
//! request rate.
//!
//! At full speed a `governor` limiter applies the configured rate and burst. governor's
//! quota is fixed at construction (governor#273), and swapping limiters would reset their
//! state, so slowing down is a second, stricter stage on top: requests are spaced evenly at
//! the reduced rate, with no burst at all. (A burst right after a pause is exactly what
//! makes a rate-limited registry answer 429 again.)
//!
//! A 429 or 503 pauses this registry only (its `Retry-After`, or a default) and halves the
//! rate, remembering the rate that was too fast as a ceiling. Runs of successes raise the
//! rate again: quickly up to just under the ceiling, then slowly past it, so the client
//! settles just below what the registry tolerates instead of oscillating around it (each
//! overshoot costs a whole `Retry-After` pause).
use crate::sync::lock;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Jitter, Quota, RateLimiter};

use super::concurrency::{Concurrency, Permit};
use crate::registry::ConcurrencyStats;

/// Pause applied on a 429/503 that carries no usable `Retry-After`.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// Longest pause honoured from one `Retry-After` (a misconfigured server must not stall a run).
const MAX_PAUSE: Duration = Duration::from_secs(300);
/// Throttling answers that arrive this soon after a pause ends were sent at the old rate:
/// they pause again but do not slow down again.
const SETTLE: Duration = Duration::from_millis(250);
/// Factor applied to the rate on throttling (measured against nginx `limit_req`: a gentler
/// 0.7 overshoots more often and loses the gain to extra pauses).
const DECREASE: f64 = 0.5;
/// Slowest rate, as a fraction of the configured one.
const MIN_FRACTION: f64 = 1.0 / 16.0;
/// Below this share of the ceiling, recover fast: `FAST_STEP` per `FAST_RUN` successes.
const NEAR_CEILING: f64 = 0.9;
const FAST_STEP: f64 = 0.05;
const FAST_RUN: u32 = 10;
/// Near or past the ceiling, probe slowly: `SLOW_STEP` per `SLOW_RUN` successes.
const SLOW_STEP: f64 = 0.02;
const SLOW_RUN: u32 = 40;

pub(crate) struct Gate {
    limiter: DefaultDirectRateLimiter,
    rate_per_second: f64,
    concurrency: std::sync::Arc<Concurrency>,
    state: Mutex<State>,
    paused_ms: AtomicU64,
}

struct State {
    /// Current rate as a fraction of the configured one.
    fraction: f64,
    /// The fraction at which the registry last throttled (1.0: never).
    ceiling: f64,
    successes: u32,
    paused_until: Option<Instant>,
    /// Until then, throttling answers do not lower the rate again.
    settle_until: Option<Instant>,
    /// While slowed down: the earliest start of the next request.
    next_slot: Instant,
    /// Bumped by every throttling answer: slots reserved before it are void.
    epoch: u64,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("fraction", &self.fraction())
            .finish_non_exhaustive()
    }
}

impl Gate {
    pub(crate) fn new(rate_per_second: u32, burst: u32, max_concurrency: usize) -> Self {
        let rate = NonZeroU32::new(rate_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            rate_per_second: rate.get() as f64,
            concurrency: std::sync::Arc::new(Concurrency::new(max_concurrency)),
            state: Mutex::new(State {
                fraction: 1.0,
                ceiling: 1.0,
                successes: 0,
                paused_until: None,
                settle_until: None,
                next_slot: Instant::now(),
                epoch: 0,
            }),
            paused_ms: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few numbers; a panic elsewhere cannot leave it inconsistent.
        lock(&self.state)
    }

    /// Waits for this registry's pause to end, a concurrency slot, and rate cells.
    /// The permit is held for as long as the request is in flight; report its outcome
    /// through it.
    pub(crate) async fn enter(&self) -> Permit {
        self.wait_pause().await;
        let mut permit = self.concurrency.acquire().await;
        self.limiter
            .until_ready_with_jitter(Jitter::up_to(Duration::from_millis(5)))
            .await;
        loop {
            self.wait_pause().await;
            let Some((slot, epoch)) = self.reserve_slot() else {
                break;
            };
            tokio::time::sleep_until(slot.into()).await;
            // A throttling answer while this request waited voids its slot: it would
            // otherwise fire together with every other waiter the moment the pause ends.
            if self.lock().epoch == epoch {
                break;
            }
        }
        permit.start();
        permit
    }

    /// While slowed down, the start time of this request: evenly spaced, no burst.
    fn reserve_slot(&self) -> Option<(Instant, u64)> {
        let mut state = self.lock();
        if state.fraction >= 1.0 {
            return None;
        }
        let interval = Duration::from_secs_f64(1.0 / (self.rate_per_second * state.fraction));
        let slot = state.next_slot.max(Instant::now());
        state.next_slot = slot + interval;
        Some((slot, state.epoch))
    }

    async fn wait_pause(&self) {
        loop {
            let until = self.lock().paused_until;
            let Some(until) = until else { return };
            let now = Instant::now();
            if until <= now {
                return;
            }
            tokio::time::sleep(until - now).await;
        }
    }

    /// The registry said "too many requests" or "unavailable": pause it and slow down.
    /// Returns the pause applied, and the new rate fraction if this answer lowered it.
    pub(crate) fn throttled(&self, retry_after: Option<Duration>) -> (Duration, Option<f64>) {
        let pause = retry_after.unwrap_or(DEFAULT_PAUSE).min(MAX_PAUSE);
        let now = Instant::now();
        let mut state = self.lock();
        state.successes = 0;
        let until = now + pause;
        // Count wall-clock time this registry is paused, not the sum over waiting tasks.
        let already = state.paused_until.filter(|u| *u > now).unwrap_or(now);
        if until > already {
            self.paused_ms
                .fetch_add((until - already).as_millis() as u64, Ordering::Relaxed);
            state.paused_until = Some(until);
        }
        let mut lowered = None;
        if state.settle_until.is_none_or(|t| now >= t) {
            state.ceiling = state.fraction;
            state.fraction = (state.fraction * DECREASE).max(MIN_FRACTION);
            lowered = Some(state.fraction);
        }
        let resume = state.paused_until.unwrap_or(now).max(now);
        state.settle_until = Some(resume + SETTLE);
        // Requests resume one interval apart from the end of the pause; earlier
        // reservations are void (their holders reserve again).
        state.next_slot = resume;
        state.epoch += 1;
        (pause, lowered)
    }

    /// A request succeeded: after a run of them, speed back up by one step.
    pub(crate) fn succeeded(&self) {
        let mut state = self.lock();
        if state.fraction >= 1.0 {
            return;
        }
        state.successes += 1;
        // (With a little slack: sums of steps are not exact in binary floating point.)
        let near = state.fraction >= state.ceiling * NEAR_CEILING - 1e-9;
        let (run, step) = if near {
            (SLOW_RUN, SLOW_STEP)
        } else {
            (FAST_RUN, FAST_STEP)
        };
        if state.successes >= run {
            state.successes = 0;
            let mut next = state.fraction + step;
            if !near {
                // Fast recovery stops just under the rate that was too fast.
                next = next.min(state.ceiling * NEAR_CEILING).max(state.fraction);
            }
            state.fraction = next.min(1.0);
        }
    }

    /// The current rate as a fraction of the configured one (1 = full speed).
    pub(crate) fn fraction(&self) -> f64 {
        self.lock().fraction
    }

    /// Wall-clock time this registry has been paused, in milliseconds.
    pub(crate) fn paused_ms(&self) -> u64 {
        self.paused_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn concurrency(&self) -> ConcurrencyStats {
        self.concurrency.stats()
    }
}

/// Parses `Retry-After`: delta-seconds or an HTTP-date.
pub(crate) fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(30)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    /// Lets the settle window pass without sleeping.
    fn settle(gate: &Gate) {
        let mut state = gate.lock();
        state.settle_until = Some(Instant::now());
        state.paused_until = None;
    }

    #[test]
    fn throttling_halves_once_per_storm_and_recovers_under_the_ceiling() {
        let gate = Gate::new(1000, 16, 4);
        gate.throttled(Some(Duration::ZERO));
        assert_eq!(gate.fraction(), 0.5);
        // Answers to requests sent before the pause ended do not slow down again.
        gate.throttled(Some(Duration::ZERO));
        assert_eq!(gate.fraction(), 0.5);
        settle(&gate);
        gate.throttled(Some(Duration::ZERO));
        assert_eq!(gate.fraction(), 0.25, "still too fast after the pause: halve again");
        assert_eq!(gate.lock().ceiling, 0.5);

        // Fast recovery up to 90% of the rate that was too fast, then slow probing.
        for _ in 0..FAST_RUN * 4 {
            gate.succeeded();
        }
        assert!((gate.fraction() - 0.45).abs() < 1e-9, "{}", gate.fraction());
        for _ in 0..FAST_RUN * 2 {
            gate.succeeded();
        }
        assert!(
            (gate.fraction() - 0.45).abs() < 1e-9,
            "capped under the ceiling: {}",
            gate.fraction()
        );
        for _ in 0..SLOW_RUN - FAST_RUN * 2 {
            gate.succeeded();
        }
        assert!((gate.fraction() - 0.47).abs() < 1e-9, "{}", gate.fraction());
    }

    #[test]
    fn the_rate_never_drops_below_its_floor() {
        let gate = Gate::new(10, 16, 1);
        for _ in 0..10 {
            gate.throttled(Some(Duration::ZERO));
            settle(&gate);
        }
        assert_eq!(gate.fraction(), MIN_FRACTION);
    }

    #[test]
    fn slowed_requests_are_spaced_evenly_without_a_burst() {
        let gate = Gate::new(100, 16, 4);
        assert_eq!(gate.reserve_slot(), None, "full speed: governor's burst applies");
        gate.throttled(Some(Duration::ZERO));
        let first = gate.reserve_slot().unwrap().0;
        let second = gate.reserve_slot().unwrap().0;
        let third = gate.reserve_slot().unwrap().0;
        // Half of 100 per second: 20 ms apart.
        assert_eq!(second - first, Duration::from_millis(20));
        assert_eq!(third - second, Duration::from_millis(20));
    }

    #[tokio::test]
    async fn a_pause_holds_requests_back() {
        let gate = Gate::new(1000, 16, 4);
        gate.throttled(Some(Duration::from_millis(150)));
        let start = Instant::now();
        let _permit = gate.enter().await;
        assert!(start.elapsed() >= Duration::from_millis(100));
        assert_eq!(gate.paused_ms(), 150);
    }
}
