//! The per-host gate every request passes, shared by every phase: a concurrency slot, a
//! slot in the host's rate, and a slot in its shared quota if it has one. Every answer is
//! reported back through the request's [`Permit`]; the host's controller
//! (`control.rs`) turns answers into a budget, and the gate applies it to the slots and
//! the pacer. It also keeps what the summary reports: how the budget moved over time and
//! what waiting cost.
//!
//! A `Retry-After` delays only the request that got it (`send.rs` waits it out before the
//! retry); the host's rate is the controller's business. (A pause of the whole host on
//! every 429 is what collapsed throughput when a registry throttled a fraction of
//! requests at random.)
use crate::sync::lock;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::concurrency::{Slot, Slots};
use super::control::{Bounds, Change, Controller, Outcome, Sent};
use super::hosts::{HostSettings, Quota};
use super::pace::Pacer;
use super::timeline::Timeline;
use crate::registry::{ConcurrencyStats, ThrottleStats, Waits};

/// A budget several hosts share: one pacer for all of them, on top of each host's own.
#[derive(Debug)]
pub(crate) struct SharedQuota {
    name: String,
    pacer: Mutex<Pacer>,
}

impl SharedQuota {
    pub(crate) fn new(quota: &Quota) -> Self {
        // No burst: a quota counted per minute is exhausted by a burst as surely as by a
        // steady excess, and evenly spaced requests never meet its end.
        Self {
            name: quota.name.clone(),
            pacer: Mutex::new(Pacer::new(quota.budget.per_second(), 1, Instant::now())),
        }
    }

    fn reserve(&self) -> Instant {
        lock(&self.pacer).reserve(Instant::now())
    }
}

#[derive(Debug)]
pub(crate) struct Gate {
    slots: Arc<Slots>,
    quota: Option<Arc<SharedQuota>>,
    /// The longest response deadline (`--registry-response-timeout`).
    response_cap: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    controller: Controller,
    pacer: Pacer,
    rate: Timeline,
    limit: Timeline,
    peak_limit: usize,
    lowest_limit: usize,
    throttled: u64,
    failed: u64,
    stalls: u64,
    /// Requests that went out, and second copies of slow ones among them.
    sent: u64,
    hedged: u64,
    decreases: u64,
    undone: u64,
    waits: [Duration; 4],
    /// Wall-clock time during which some request waited out a `Retry-After`.
    paused: Duration,
    paused_until: Option<Instant>,
}

/// Second copies of slow requests: at most this share of a host's requests, plus a few.
const HEDGE_SHARE: f64 = 0.1;
const HEDGE_ALLOWANCE: f64 = 4.0;

/// Indexes into `State::waits`.
const SLOT: usize = 0;
const RATE: usize = 1;
const QUOTA: usize = 2;
const RETRY: usize = 3;

impl Gate {
    pub(crate) fn new(settings: &HostSettings, quota: Option<Arc<SharedQuota>>, response_cap: Duration) -> Self {
        let now = Instant::now();
        let bounds = Bounds {
            max_rate: settings.max_rate,
            max_limit: settings.max_concurrency.max(1),
        };
        let controller = Controller::new(bounds, now);
        let (rate, limit) = (controller.rate(), controller.limit());
        Self {
            slots: Arc::new(Slots::new(limit)),
            quota,
            response_cap,
            state: Mutex::new(State {
                pacer: Pacer::new(rate, settings.burst, now),
                rate: Timeline::new(rate, now),
                limit: Timeline::new(limit as f64, now),
                peak_limit: limit,
                lowest_limit: limit,
                controller,
                throttled: 0,
                failed: 0,
                stalls: 0,
                sent: 0,
                hedged: 0,
                decreases: 0,
                undone: 0,
                waits: [Duration::ZERO; 4],
                paused: Duration::ZERO,
                paused_until: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is numbers that stay consistent after any single update; a panic
        // elsewhere is no reason to lose them.
        lock(&self.state)
    }

    /// Waits for a concurrency slot, then the request's slot in the host's rate, then in
    /// the shared quota. The permit is held for as long as the request is in flight; its
    /// answer is reported through it.
    pub(crate) async fn enter(self: &Arc<Self>) -> Permit {
        let asked = Instant::now();
        let mut slot = self.slots.acquire().await;
        let admitted = Instant::now();
        let at = self.lock().pacer.reserve(admitted);
        tokio::time::sleep_until(at.into()).await;
        let paced = Instant::now();
        if let Some(quota) = &self.quota {
            tokio::time::sleep_until(quota.reserve().into()).await;
        }
        let now = Instant::now();
        let slots_bound = slot.start();
        let mut state = self.lock();
        state.sent += 1;
        state.waits[SLOT] += admitted - asked;
        state.waits[RATE] += paced - admitted;
        state.waits[QUOTA] += now - paced;
        let sent = Sent {
            epoch: state.controller.epoch(),
            at: now,
            rate_bound: at > admitted,
            slots_bound,
        };
        Permit {
            _slot: slot,
            reporter: Reporter {
                gate: self.clone(),
                sent,
            },
        }
    }

    /// How long a small request may wait for its response headers: adapted to the host's
    /// latency (see `Controller::response_deadline`).
    pub(crate) fn response_deadline(&self) -> Duration {
        self.lock().controller.response_deadline(self.response_cap)
    }

    /// How long a request safe to send twice (`send.rs`: `Hedge`) may go unanswered
    /// before a second copy of it is sent; `None` until the host's latency is known.
    pub(crate) fn hedge_delay(&self) -> Option<Duration> {
        self.lock().controller.hedge_delay()
    }

    /// Takes a second copy of a slow request from the host's allowance: at most
    /// [`HEDGE_SHARE`] of its requests, after the first [`HEDGE_ALLOWANCE`]. A registry
    /// slow because it is overloaded must not be sent much more; one that lets a few
    /// connections hang gets each hung request again at once instead of at its deadline.
    /// The copy takes no slot of its own: it stands in for a request whose slot is held.
    pub(crate) fn take_hedge(&self) -> bool {
        let mut state = self.lock();
        let allowed = HEDGE_ALLOWANCE + HEDGE_SHARE * state.sent as f64;
        let take = (state.hedged as f64) < allowed;
        state.hedged += u64::from(take);
        take
    }

    /// Waits `delay` before a retry; `retry_after` when the registry asked for it.
    pub(crate) async fn wait_to_retry(&self, delay: Duration, retry_after: bool) {
        let now = Instant::now();
        {
            let mut state = self.lock();
            state.waits[RETRY] += delay;
            if retry_after {
                // Count wall-clock time, not the sum over waiting requests.
                let until = now + delay;
                let from = state.paused_until.filter(|u| *u > now).unwrap_or(now);
                if until > from {
                    state.paused += until - from;
                    state.paused_until = Some(until);
                }
            }
        }
        tokio::time::sleep(delay).await;
    }

    fn report(&self, sent: Sent, outcome: Outcome, stall: bool, latency: Option<Duration>) -> Option<Change> {
        let now = Instant::now();
        let mut state = self.lock();
        match outcome {
            Outcome::Healthy => {}
            Outcome::Throttled => state.throttled += 1,
            Outcome::Failed => state.failed += 1,
        }
        state.stalls += u64::from(stall);
        let change = state.controller.observe(sent, outcome, latency, now)?;
        let (rate, limit) = (state.controller.rate(), state.controller.limit());
        state.pacer.set_rate(rate, now);
        match change {
            Change::Decreased { throttled } => {
                state.decreases += 1;
                if throttled {
                    state.pacer.set_burst(1, now);
                } else {
                    state.pacer.drain(now);
                }
            }
            Change::Undone { .. } => state.undone += 1,
            Change::Grew | Change::Recovered | Change::Queueing => {}
        }
        self.slots.set_limit(limit);
        state.rate.set(rate, now);
        state.limit.set(limit as f64, now);
        state.peak_limit = state.peak_limit.max(limit);
        state.lowest_limit = state.lowest_limit.min(limit);
        Some(change)
    }

    /// The budget now: requests per second and in flight.
    pub(crate) fn budget(&self) -> (f64, usize) {
        let state = self.lock();
        (state.controller.rate(), state.controller.limit())
    }

    /// Wall-clock time some request of this host spent waiting out a `Retry-After`.
    pub(crate) fn paused_ms(&self) -> u64 {
        millis(self.lock().paused)
    }

    pub(crate) fn concurrency(&self) -> ConcurrencyStats {
        let state = self.lock();
        ConcurrencyStats {
            limit: state.controller.limit(),
            peak: state.peak_limit,
            lowest: state.lowest_limit,
            in_flight_peak: self.slots.held_peak(),
        }
    }

    pub(crate) fn throttling(&self) -> ThrottleStats {
        let now = Instant::now();
        let state = self.lock();
        let bounds = state.controller.bounds();
        ThrottleStats {
            rate_per_s: state.rate.spread(now),
            concurrency: state.limit.spread(now),
            rate_ceiling: bounds.max_rate,
            at_rate_ceiling_ms: bounds
                .max_rate
                .map_or(0, |max| millis(state.rate.time_at_least(max, now))),
            concurrency_ceiling: bounds.max_limit,
            at_concurrency_ceiling_ms: millis(state.limit.time_at_least(bounds.max_limit as f64, now)),
            throttled: state.throttled,
            failed: state.failed,
            stalls: state.stalls,
            hedged: state.hedged,
            decreases: state.decreases,
            undone: state.undone,
            noise: state.controller.noise(),
            waited_ms: Waits {
                slot: millis(state.waits[SLOT]),
                rate: millis(state.waits[RATE]),
                quota: millis(state.waits[QUOTA]),
                retry: millis(state.waits[RETRY]),
            },
            quota: self.quota.as_ref().map(|q| q.name.clone()),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A request in flight: its concurrency slot (returned on drop) and what the gate knew
/// when it went out.
#[derive(Debug)]
pub(crate) struct Permit {
    _slot: Slot,
    reporter: Reporter,
}

impl Permit {
    /// Reports how the request went: `stall` when it was abandoned at its deadline;
    /// `latency`, the time to the response headers of a bodyless request. Returns the
    /// change of budget this completed, if any (for the log).
    pub(crate) fn report(&self, outcome: Outcome, stall: bool, latency: Option<Duration>) -> Option<Change> {
        self.reporter.report(outcome, stall, latency)
    }

    /// A handle that outlives the slot: a download's body is read after its slot is
    /// returned, and a stall there is still a sign about the host.
    pub(crate) fn reporter(&self) -> Reporter {
        self.reporter.clone()
    }
}

/// Reports the outcome of a request to its host's gate.
#[derive(Debug, Clone)]
pub(crate) struct Reporter {
    gate: Arc<Gate>,
    sent: Sent,
}

impl Reporter {
    pub(crate) fn report(&self, outcome: Outcome, stall: bool, latency: Option<Duration>) -> Option<Change> {
        self.gate.report(self.sent, outcome, stall, latency)
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
    use crate::registry::ClientOptions;

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

    fn gate(options: &ClientOptions, quota: Option<Arc<SharedQuota>>) -> Arc<Gate> {
        Arc::new(Gate::new(
            &options.for_host("registry.example"),
            quota,
            Duration::from_secs(30),
        ))
    }

    #[tokio::test]
    async fn a_throttling_storm_lowers_the_budget_once_and_the_slots_follow() {
        let g = gate(&ClientOptions::default(), None);
        let permits: Vec<Permit> = futures_util::future::join_all((0..8).map(|_| g.enter())).await;
        for p in &permits {
            p.report(Outcome::Throttled, false, None);
        }
        let (rate, limit) = g.budget();
        assert_eq!(limit, 4, "halved once for the whole storm");
        assert!(rate < 50.0);
        let stats = g.throttling();
        assert_eq!((stats.throttled, stats.decreases), (8, 1));
        assert_eq!(g.concurrency().lowest, 4);
        drop(permits);
        // The slots follow the limit: 4 may be held, not a fifth.
        let held: Vec<Permit> = futures_util::future::join_all((0..4).map(|_| g.enter())).await;
        assert!(
            tokio::time::timeout(Duration::from_millis(50), g.enter())
                .await
                .is_err(),
            "a fifth request waits"
        );
        drop(held);
    }

    #[tokio::test]
    async fn retry_after_pauses_count_wall_clock_time_once() {
        let g = gate(&ClientOptions::default(), None);
        let started = Instant::now();
        futures_util::future::join(
            g.wait_to_retry(Duration::from_millis(150), true),
            g.wait_to_retry(Duration::from_millis(150), true),
        )
        .await;
        assert!(started.elapsed() >= Duration::from_millis(140));
        let paused = g.paused_ms();
        assert!((150..250).contains(&paused), "{paused}");
        assert_eq!(g.throttling().waited_ms.retry, 300, "summed over requests");
        // A backoff is not a pause the registry asked for.
        g.wait_to_retry(Duration::from_millis(10), false).await;
        assert_eq!(g.paused_ms(), paused);
    }

    #[tokio::test]
    async fn a_shared_quota_spaces_requests_across_hosts() {
        let quota = Quota::parse_flag("*=20/s").unwrap();
        let shared = Arc::new(SharedQuota::new(&quota));
        let options = ClientOptions::default();
        let (a, b) = (gate(&options, Some(shared.clone())), gate(&options, Some(shared)));
        let started = Instant::now();
        for _ in 0..5 {
            let (pa, pb) = futures_util::future::join(a.enter(), b.enter()).await;
            drop((pa, pb));
        }
        // 10 requests at 20/s between both hosts: 9 intervals of 50 ms at least.
        assert!(
            started.elapsed() >= Duration::from_millis(440),
            "{:?}",
            started.elapsed()
        );
        let waited = a.throttling().waited_ms.quota + b.throttling().waited_ms.quota;
        assert!(waited > 0);
        assert_eq!(a.throttling().quota.as_deref(), Some("*"));
    }

    #[test]
    fn ceilings_are_reported_with_the_time_spent_there() {
        let options = ClientOptions {
            rate_limit: Some(10),
            max_concurrency: 3,
            ..ClientOptions::default()
        };
        let g = gate(&options, None);
        let stats = g.throttling();
        assert_eq!(stats.rate_ceiling, Some(10.0));
        assert_eq!(stats.concurrency_ceiling, 3);
        assert_eq!(stats.rate_per_s.last, 10.0, "started at the ceiling");
        assert_eq!(stats.concurrency.last, 3.0);
    }
}
