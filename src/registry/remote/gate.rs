//! The per-registry gate every request passes: pause, concurrency, rate.
//!
//! governor's quota is fixed at construction (governor#273), so slowing down does not swap
//! limiters (that would reset the burst state and let extra requests through). Instead each
//! request costs `k` cells of one limiter: the effective rate is `rate / k`. A 429 or 503
//! pauses this registry only (for its `Retry-After`, or a default) and doubles `k`; a run of
//! successes lowers `k` by one (AIMD, like TCP).
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Jitter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Pause applied on a 429/503 that carries no usable `Retry-After`.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// Longest pause honoured from one `Retry-After` (a misconfigured server must not stall a run).
const MAX_PAUSE: Duration = Duration::from_secs(300);
/// After slowing down, further throttling answers within this window do not slow down again:
/// they are the requests that were already in flight.
const SLOWDOWN_COOLDOWN: Duration = Duration::from_secs(2);
/// Consecutive successes after which the slowdown factor steps back by one.
const RECOVERY_RUN: u32 = 10;
/// Largest slowdown factor (the rate never drops below 1/16 of the configured one).
const MAX_SLOWDOWN: u32 = 16;

pub(crate) struct Gate {
    limiter: DefaultDirectRateLimiter,
    burst: u32,
    concurrency: std::sync::Arc<Semaphore>,
    slowdown: AtomicU32,
    successes: AtomicU32,
    state: Mutex<PauseState>,
    paused_ms: AtomicU64,
}

struct PauseState {
    paused_until: Option<Instant>,
    last_slowdown: Option<Instant>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("burst", &self.burst)
            .field("slowdown", &self.slowdown.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Gate {
    pub(crate) fn new(rate_per_second: u32, burst: u32, max_concurrency: usize) -> Self {
        let rate = NonZeroU32::new(rate_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst_nz = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst_nz)),
            burst: burst_nz.get(),
            concurrency: std::sync::Arc::new(Semaphore::new(max_concurrency.max(1))),
            slowdown: AtomicU32::new(1),
            successes: AtomicU32::new(0),
            state: Mutex::new(PauseState {
                paused_until: None,
                last_slowdown: None,
            }),
            paused_ms: AtomicU64::new(0),
        }
    }

    /// Waits for this registry's pause to end, a concurrency slot, and rate cells.
    /// The permit is held for as long as the request (and its body) is in flight.
    /// (`None` only if the semaphore were closed, which this type never does.)
    pub(crate) async fn enter(&self) -> Option<OwnedSemaphorePermit> {
        self.wait_pause().await;
        let permit = self.concurrency.clone().acquire_owned().await.ok();
        let k = self.slowdown.load(Ordering::Relaxed).clamp(1, self.burst);
        let cells = NonZeroU32::new(k).unwrap_or(NonZeroU32::MIN);
        // `until_n_ready` only fails when n exceeds the burst, which the clamp rules out.
        let _ = self
            .limiter
            .until_n_ready_with_jitter(cells, Jitter::up_to(Duration::from_millis(5)))
            .await;
        // A pause may have started while this request waited for its slot.
        self.wait_pause().await;
        permit
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

    fn lock(&self) -> std::sync::MutexGuard<'_, PauseState> {
        // The state is two timestamps; a panic elsewhere cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The registry said "too many requests" or "unavailable": pause it and slow down.
    /// Returns the pause applied.
    pub(crate) fn throttled(&self, retry_after: Option<Duration>) -> Duration {
        let pause = retry_after.unwrap_or(DEFAULT_PAUSE).min(MAX_PAUSE);
        let now = Instant::now();
        self.successes.store(0, Ordering::Relaxed);
        let mut state = self.lock();
        let until = now + pause;
        // Count wall-clock time this registry is paused, not the sum over waiting tasks.
        let already = state.paused_until.filter(|u| *u > now).unwrap_or(now);
        if until > already {
            self.paused_ms
                .fetch_add((until - already).as_millis() as u64, Ordering::Relaxed);
            state.paused_until = Some(until);
        }
        let cooled = state
            .last_slowdown
            .is_none_or(|t| now.duration_since(t) >= SLOWDOWN_COOLDOWN);
        if cooled {
            state.last_slowdown = Some(now);
            let max = MAX_SLOWDOWN.min(self.burst);
            let _ = self
                .slowdown
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |k| Some((k * 2).min(max)));
        }
        pause
    }

    /// A request succeeded: after a run of them, speed back up by one step.
    pub(crate) fn succeeded(&self) {
        let run = self.successes.fetch_add(1, Ordering::Relaxed) + 1;
        if run >= RECOVERY_RUN && self.slowdown.load(Ordering::Relaxed) > 1 {
            self.successes.store(0, Ordering::Relaxed);
            let _ = self.slowdown.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |k| {
                Some(k.saturating_sub(1).max(1))
            });
        }
    }

    /// The current divisor of the configured rate (1 = full speed).
    pub(crate) fn slowdown(&self) -> u32 {
        self.slowdown.load(Ordering::Relaxed)
    }

    /// Wall-clock time this registry has been paused, in milliseconds.
    pub(crate) fn paused_ms(&self) -> u64 {
        self.paused_ms.load(Ordering::Relaxed)
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

    #[tokio::test]
    async fn throttling_slows_down_and_successes_recover() {
        let gate = Gate::new(1000, 16, 4);
        gate.throttled(Some(Duration::ZERO));
        assert_eq!(gate.slowdown(), 2);
        // Within the cooldown a second answer from the same storm does not slow down again.
        gate.throttled(Some(Duration::ZERO));
        assert_eq!(gate.slowdown(), 2);
        for _ in 0..RECOVERY_RUN {
            gate.succeeded();
        }
        assert_eq!(gate.slowdown(), 1);
    }

    #[tokio::test]
    async fn a_pause_holds_requests_back() {
        let gate = Gate::new(1000, 16, 4);
        gate.throttled(Some(Duration::from_millis(150)));
        let start = Instant::now();
        let _permit = gate.enter().await;
        assert!(start.elapsed() >= Duration::from_millis(100));
        assert!(gate.paused_ms() >= 100);
    }

    #[test]
    fn slowdown_never_exceeds_the_burst() {
        let gate = Gate::new(10, 4, 1);
        let mut state_time = Instant::now();
        for _ in 0..6 {
            gate.throttled(Some(Duration::ZERO));
            // Pretend the cooldown passed.
            state_time -= SLOWDOWN_COOLDOWN;
            gate.lock().last_slowdown = Some(state_time);
        }
        assert_eq!(gate.slowdown(), 4);
    }
}
