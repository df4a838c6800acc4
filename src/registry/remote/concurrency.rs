//! How many requests one registry host gets at once: a limit that adapts to the registry.
//!
//! A fixed limit is either too low for a big registry far away (each request waits on a
//! round trip, so throughput is concurrency over latency) or too high for a small one
//! (it answers 429 or 5xx, or just queues everything). So the limit starts moderate and
//! follows the registry, additive increase and multiplicative decrease like TCP:
//!
//! - **Grow** by one after a window of `limit` healthy answers, but only when the limit was
//!   what held requests back (at least half of that window found every slot busy at the
//!   moment it went out) and the registry is not slowing down (smoothed latency under
//!   [`LATENCY_FACTOR`] times its baseline). Growing an unused limit would record nothing
//!   about the registry and let a later burst hit it at full width.
//! - **Shrink** to half on throttling (429, or 503 with `Retry-After`) and to three
//!   quarters on other overload signs (5xx, timeouts, resets): once per storm, because a
//!   failure only counts if its request was admitted after the last decrease. The answers
//!   to requests sent under the old limit say nothing about the new one; counting them
//!   would collapse the limit to 1 on a single burst.
//!
//! The limit lives in a tokio [`Semaphore`] whose permit count is kept equal to the limit.
//! Lowering it while requests are out forgets the free permits at once and the rest
//! ("debt") as [`Permit`]s come back, so requests in flight never exceed a lowered limit
//! once its debt is paid.
use crate::sync::lock;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::registry::ConcurrencyStats;

/// Starting limit (capped by the configured maximum): enough to fill a fast link to a
/// nearby registry, few enough that a small one is not swamped before it can object.
pub(crate) const START: usize = 8;
/// Factor applied on throttling (the registry said "too much" explicitly).
const THROTTLED: f64 = 0.5;
/// Factor applied on server errors, timeouts and resets: gentler, since one bad backend
/// behind a load balancer or a single race answers 500 without any overload.
const FAILED: f64 = 0.75;
/// No growth while the smoothed latency exceeds its baseline by this factor: the registry
/// is queueing requests, and more of them would only queue longer.
const LATENCY_FACTOR: f64 = 2.0;
/// Weight of each new latency sample in the smoothed value (about the last 8 requests).
const SMOOTHING: f64 = 1.0 / 8.0;
/// Samples before the smoothed latency is trusted as a baseline (it starts from one).
const WARMUP: u32 = 16;

/// One registry host's adaptive concurrency limit.
#[derive(Debug)]
pub(crate) struct Concurrency {
    semaphore: Arc<Semaphore>,
    max: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    limit: usize,
    /// Permits still to forget as they come back, after a decrease.
    debt: usize,
    /// Permits handed out and not yet returned.
    held: usize,
    /// Of those, the ones whose request has gone out (past the rate limiter).
    sending: usize,
    /// Bumped by every decrease: answers to requests admitted before it do not count.
    epoch: u64,
    /// Healthy answers in the current growth window, and how many found the limit full.
    window: usize,
    busy: usize,
    latency: Latency,
    peak: usize,
    lowest: usize,
    held_peak: usize,
}

/// Time to response headers of requests without a body.
///
/// The baseline is the lowest smoothed value of the run: a baseline that followed latency
/// up would follow the queueing this very limit causes, and let the limit ratchet up to
/// the cap. (Runs last minutes; a registry whose latency rises for reasons of its own only
/// stops the growth, it never lowers the limit.) Smoothing keeps one lucky fast answer
/// from becoming the baseline.
#[derive(Debug, Default)]
struct Latency {
    samples: u32,
    recent: f64,
    baseline: Option<f64>,
}

impl Latency {
    fn observe(&mut self, sample: Duration) {
        let sample = sample.as_secs_f64();
        self.samples = self.samples.saturating_add(1);
        self.recent = if self.samples == 1 {
            sample
        } else {
            self.recent + (sample - self.recent) * SMOOTHING
        };
        if self.samples >= WARMUP {
            self.baseline = Some(self.baseline.map_or(self.recent, |b| b.min(self.recent)));
        }
    }

    /// No baseline yet (few samples, or only uploads so far): no evidence against growing.
    fn allows_growth(&self) -> bool {
        self.baseline.is_none_or(|b| self.recent <= b * LATENCY_FACTOR)
    }
}

/// A concurrency slot, held while a request is in flight. Dropping it returns the slot,
/// or forgets it if the limit was lowered meanwhile.
#[derive(Debug)]
pub(crate) struct Permit {
    permit: Option<OwnedSemaphorePermit>,
    owner: Arc<Concurrency>,
    epoch: u64,
    sending: bool,
    /// Whether every slot was busy when this request went out.
    busy: bool,
}

impl Concurrency {
    /// A limit starting at `min(START, max)`, never above `max` nor below 1.
    pub(crate) fn new(max: usize) -> Self {
        let max = max.max(1);
        let limit = START.min(max);
        Self {
            semaphore: Arc::new(Semaphore::new(limit)),
            max,
            state: Mutex::new(State {
                limit,
                debt: 0,
                held: 0,
                sending: 0,
                epoch: 0,
                window: 0,
                busy: 0,
                latency: Latency::default(),
                peak: limit,
                lowest: limit,
                held_peak: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few numbers; a panic elsewhere cannot leave it inconsistent.
        lock(&self.state)
    }

    /// Waits for a slot.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Permit {
        // The semaphore is never closed, so this is always `Some`.
        let permit = self.semaphore.clone().acquire_owned().await.ok();
        let mut state = self.lock();
        state.held += 1;
        state.held_peak = state.held_peak.max(state.held);
        Permit {
            permit,
            owner: self.clone(),
            epoch: state.epoch,
            sending: false,
            busy: false,
        }
    }

    pub(crate) fn stats(&self) -> ConcurrencyStats {
        let state = self.lock();
        ConcurrencyStats {
            limit: state.limit,
            peak: state.peak,
            lowest: state.lowest,
            in_flight_peak: state.held_peak,
        }
    }

    fn healthy(&self, permit: &Permit, latency: Option<Duration>) {
        let mut state = self.lock();
        if let Some(sample) = latency {
            state.latency.observe(sample);
        }
        if permit.epoch != state.epoch {
            return;
        }
        state.window += 1;
        state.busy += usize::from(permit.busy);
        if state.window < state.limit {
            return;
        }
        let used = state.busy * 2 >= state.window;
        state.window = 0;
        state.busy = 0;
        if used && state.latency.allows_growth() && state.limit < self.max {
            state.limit += 1;
            state.peak = state.peak.max(state.limit);
            if state.debt > 0 {
                state.debt -= 1;
            } else {
                self.semaphore.add_permits(1);
            }
        }
    }

    /// Lowers the limit by `factor` unless `permit`'s request predates the last decrease.
    /// Returns the new limit if it changed.
    fn shrink(&self, permit: &Permit, factor: f64) -> Option<usize> {
        let mut state = self.lock();
        if permit.epoch != state.epoch {
            return None;
        }
        state.epoch += 1;
        state.window = 0;
        state.busy = 0;
        let target = ((state.limit as f64 * factor) as usize).max(1);
        let cut = state.limit - target;
        if cut == 0 {
            return None;
        }
        state.limit = target;
        state.lowest = state.lowest.min(target);
        let forgotten = self.semaphore.forget_permits(cut);
        state.debt += cut - forgotten;
        Some(target)
    }
}

impl Permit {
    /// The request is going out now: notes whether the limit is what holds requests back.
    pub(crate) fn start(&mut self) {
        if self.sending {
            return;
        }
        let mut state = self.owner.lock();
        state.sending += 1;
        self.sending = true;
        self.busy = state.sending >= state.limit;
    }

    /// The registry answered without a sign of overload. `latency` is the time to the
    /// response headers, for requests without a body only (an upload's time says nothing
    /// about queueing).
    pub(crate) fn healthy(&self, latency: Option<Duration>) {
        self.owner.healthy(self, latency);
    }

    /// The registry throttled (429, or 503 with `Retry-After`): halve the limit, once per
    /// storm. Returns the new limit if this answer lowered it.
    pub(crate) fn throttled(&self) -> Option<usize> {
        self.owner.shrink(self, THROTTLED)
    }

    /// A server error, timeout or reset: lower the limit gently, once per storm.
    pub(crate) fn failed(&self) -> Option<usize> {
        self.owner.shrink(self, FAILED)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let pay_debt = {
            let mut state = self.owner.lock();
            state.held -= 1;
            if self.sending {
                state.sending -= 1;
            }
            let pay = state.debt > 0 && self.permit.is_some();
            if pay {
                state.debt -= 1;
            }
            pay
        };
        if let Some(permit) = self.permit.take() {
            if pay_debt {
                permit.forget();
            } else {
                drop(permit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `n` slots that have all gone out, as busy requests would.
    async fn take(c: &Arc<Concurrency>, n: usize) -> Vec<Permit> {
        let mut out = Vec::new();
        for _ in 0..n {
            let mut p = c.acquire().await;
            p.start();
            out.push(p);
        }
        out
    }

    /// One window of healthy answers from a fully used limit: `limit` requests that each
    /// went out with every slot busy.
    async fn busy_window(c: &Arc<Concurrency>, latency: Duration) {
        let limit = c.stats().limit;
        let mut held = take(c, limit).await;
        for _ in 0..limit {
            drop(held.remove(0));
            held.extend(take(c, 1).await);
        }
        for p in held {
            p.healthy(Some(latency));
        }
    }

    fn free(c: &Concurrency) -> usize {
        c.semaphore.available_permits()
    }

    #[test]
    fn starts_moderate_and_never_above_the_cap() {
        assert_eq!(Concurrency::new(32).stats().limit, 8);
        assert_eq!(Concurrency::new(3).stats().limit, 3);
        assert_eq!(Concurrency::new(0).stats().limit, 1);
        assert_eq!(free(&Concurrency::new(32)), 8);
    }

    #[tokio::test]
    async fn grows_by_one_per_window_of_busy_successes_up_to_the_cap() {
        let c = Arc::new(Concurrency::new(10));
        let ms = Duration::from_millis(1);
        busy_window(&c, ms).await;
        assert_eq!(c.stats().limit, 9);
        busy_window(&c, ms).await;
        assert_eq!(c.stats().limit, 10);
        busy_window(&c, ms).await;
        busy_window(&c, ms).await;
        let stats = c.stats();
        assert_eq!((stats.limit, stats.peak), (10, 10), "capped");
        // The permits follow the limit: all 10 can be held, not an 11th.
        let held = take(&c, 10).await;
        assert_eq!(free(&c), 0);
        drop(held);
        assert_eq!(free(&c), 10);
        assert_eq!(c.stats().in_flight_peak, 10);
    }

    #[tokio::test]
    async fn an_unused_limit_does_not_grow() {
        let c = Arc::new(Concurrency::new(32));
        // Two requests at a time: the limit of 8 is never what holds anything back.
        for _ in 0..40 {
            let pair = take(&c, 2).await;
            for p in &pair {
                p.healthy(Some(Duration::from_millis(1)));
            }
        }
        // Slots held while waiting for the rate limiter (not yet sent) are no evidence
        // either: the rate is the bottleneck then, not the concurrency.
        for _ in 0..40 {
            let mut waiting = Vec::new();
            for _ in 0..7 {
                waiting.push(c.acquire().await);
            }
            let sent = take(&c, 1).await;
            sent[0].healthy(Some(Duration::from_millis(1)));
        }
        assert_eq!(c.stats().limit, 8);
    }

    #[tokio::test]
    async fn inflated_latency_stops_the_growth() {
        let c = Arc::new(Concurrency::new(32));
        let fast = Duration::from_millis(10);
        for _ in 0..3 {
            busy_window(&c, fast).await;
        }
        let grown = c.stats().limit;
        assert_eq!(grown, 11);
        // The registry now answers three times slower: it is queueing our requests.
        for _ in 0..5 {
            busy_window(&c, fast * 3).await;
        }
        let limit = c.stats().limit;
        assert!(limit <= grown + 1, "grew while slow: {grown} -> {limit}");
        for _ in 0..5 {
            busy_window(&c, fast * 3).await;
        }
        assert_eq!(c.stats().limit, limit, "no growth while latency stays inflated");
        // Back to normal: growth resumes.
        for _ in 0..5 {
            busy_window(&c, fast).await;
        }
        assert!(c.stats().limit > limit);
    }

    #[tokio::test]
    async fn throttling_halves_once_per_storm() {
        let c = Arc::new(Concurrency::new(32));
        let storm = take(&c, 8).await;
        // Every request of the burst is throttled; only the first answer counts.
        let lowered: Vec<Option<usize>> = storm.iter().map(Permit::throttled).collect();
        assert_eq!(lowered[0], Some(4));
        assert!(lowered[1..].iter().all(Option::is_none), "{lowered:?}");
        assert_eq!(c.stats().limit, 4);
        drop(storm);
        // Still too much for the registry after the decrease: halve again.
        let after = take(&c, 4).await;
        assert_eq!(after[0].throttled(), Some(2));
        assert_eq!(after[1].throttled(), None);
        drop(after);
        let last = take(&c, 1).await;
        assert_eq!(last[0].throttled(), Some(1));
        drop(last);
        let floor = take(&c, 1).await;
        assert_eq!(floor[0].throttled(), None, "never below 1");
        let stats = c.stats();
        assert_eq!((stats.limit, stats.lowest, stats.peak), (1, 1, 8));
        drop(floor);
        assert_eq!(free(&c), 1);
    }

    #[tokio::test]
    async fn server_errors_lower_the_limit_gently() {
        let c = Arc::new(Concurrency::new(32));
        let out = take(&c, 8).await;
        assert_eq!(out[0].failed(), Some(6));
        assert_eq!(out[1].failed(), None, "same storm");
        drop(out);
        let out = take(&c, 6).await;
        assert_eq!(out[0].failed(), Some(4));
        drop(out);
        let out = take(&c, 1).await;
        assert_eq!(out[0].failed(), Some(3));
        drop(out);
        assert_eq!(free(&c), 3);
    }

    #[tokio::test]
    async fn a_decrease_with_requests_out_takes_effect_as_they_return() {
        let c = Arc::new(Concurrency::new(32));
        let mut out = take(&c, 6).await;
        assert_eq!(free(&c), 2);
        // Halve to 4 with 6 out: the 2 free permits go at once, 2 more are owed.
        assert_eq!(out[0].throttled(), Some(4));
        assert_eq!(free(&c), 0);
        // The first two returned slots pay the debt instead of admitting anyone.
        out.truncate(4);
        assert_eq!(free(&c), 0);
        assert_eq!(c.state.lock().unwrap().held, 4);
        out.pop();
        assert_eq!(free(&c), 1, "debt paid: slots circulate again");
        drop(out);
        assert_eq!(free(&c), 4);

        // Under load: many tasks, and never more than the new limit out at once after the
        // debt is paid.
        let c = Arc::new(Concurrency::new(32));
        let out = take(&c, 8).await;
        assert_eq!(out[0].failed(), Some(6));
        drop(out);
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (c, in_flight, most) = (c.clone(), in_flight.clone(), most.clone());
                tokio::spawn(async move {
                    for _ in 0..10 {
                        let _p = c.acquire().await;
                        let now = in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                        most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 6);
    }

    #[tokio::test]
    async fn answers_from_before_a_decrease_do_not_grow_it() {
        let c = Arc::new(Concurrency::new(32));
        let out = take(&c, 8).await;
        assert_eq!(out[0].throttled(), Some(4));
        // Sent under the old limit: their success says nothing about the new one.
        for p in &out {
            p.healthy(None);
        }
        drop(out);
        assert_eq!(c.stats().limit, 4);
        assert_eq!(free(&c), 4);
        busy_window(&c, Duration::from_millis(1)).await;
        assert_eq!(c.stats().limit, 5);
        assert_eq!(free(&c), 5);
    }
}
