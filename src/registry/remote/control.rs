//! How hard kpromo may push one registry host: a controller over both the request rate and
//! the number of requests in flight, fed by events and free of I/O (the gate applies it).
//!
//! A fixed budget is wrong both ways: too low for a big registry (a run that could take
//! 20 s takes 100) and too high for a small one (429s, 5xx, queueing). So the controller
//! searches, the way TCP does for a path's capacity:
//!
//! - **Slow start.** From 50 requests/s and 8 in flight, double the rate and grow the
//!   limit by half per window of healthy answers, while that budget is what holds requests
//!   back and the latency of bodyless requests stays near its baseline.
//! - **Congestion avoidance.** After the first sign of congestion: +3 % rate and +1 slot per
//!   healthy window; past the registry's capacity as last measured (what it accepted when
//!   a decrease was confirmed), +1 % per window, 1 % more every few windows.
//! - **Decrease** on throttling (429, 503 with `Retry-After`) and on failures (5xx, timeouts,
//!   resets, stalls): the rate to 0.9 of what the registry accepted lately (never below a
//!   quarter, never above 0.9 (throttling) or 0.8 (failures) of the rate sent; a throttled
//!   rate far above what was accepted counts from twice that), the limit ×0.5 on
//!   throttling (not below 4: the rate is what a 429 is about) and ×0.75 on failures. At
//!   most once per window, and only from answers to requests sent after the previous
//!   decrease: one storm, one decrease, whatever was in flight. (The gate also stops
//!   granting bursts to a host that throttled.) A storm (most answers refused) takes at
//!   least [`MIN_WINDOW`] answers to tell: one random 429 in a window of one is not one.
//! - **Latency first.** A smoothed latency over twice its baseline stops growth; over three
//!   times, the limit shrinks by one per window (TCP Vegas' idea): the registry is
//!   queueing, and errors come next. Only once it adds [`MIN_QUEUE_DELAY`] or more: a
//!   fraction of a millisecond tripled is a loopback machine's scheduling, not a queue.
//! - **Noise is not congestion.** A registry may fail a fraction of requests whatever the
//!   load (a bad backend, a flaky proxy). Each decrease is checked over the next
//!   [`CHECK_ANSWERS`] answers: if the failure fraction did not clearly drop, the decrease is
//!   undone and that fraction is learned as background noise, which later windows must
//!   exceed (by more than chance) to count as congestion. Without this, random failures
//!   would ratchet the budget down to its floor. A check cut short by [`CHECK_TIME`] with
//!   fewer answers than that (a trickle) cannot tell: the decrease is undone and nothing
//!   learned, since a cut kept is what the next random 429 cuts from.
//! - **Demand is not capacity.** What the registry accepted measures it only while the
//!   budget (rate or slots) held requests back over the whole span measured (2 s). A
//!   decrease provoked otherwise (kpromo had no more to send: the plan's trickle of tag
//!   lists and HEADs, or that trickle still filling the span just after the copy began)
//!   neither ends slow start nor, once confirmed, sets the capacity. (Random 429s at a
//!   few requests/s set it at a few, and the copy then crawled up from there at 1 % per
//!   window: a host at 1 request/s, a run at 13.8× its fault-free time.)
//! - **Quotas come back.** A budget cut deep by an exhausted quota window (every answer a
//!   429: overload, in a window or a check) returns to 90 % of the rate the registry last
//!   accepted on the first healthy window, instead of crawling back up from the floor.
//!
//! Hard ceilings (`--registry-rate-limit`, `--registry-max-concurrency`) cap both.
use std::time::{Duration, Instant};

/// Budget a host starts with, when no ceiling is lower.
pub(crate) const START_RATE: f64 = 50.0;
pub(crate) const START_LIMIT: usize = 8;
/// The lowest the controller goes: a registry that throttles everything still sees a probe
/// now and then, and nothing more.
pub(crate) const MIN_RATE: f64 = 1.0;
/// The lowest rate failures alone (5xx, timeouts, resets, no "too many") take a host to.
pub(crate) const MIN_FAILING_RATE: f64 = 10.0;
/// Answers per window, at least (fewer say too little about a fraction).
const MIN_WINDOW: u32 = 8;
/// A window also closes after this long with at least one answer, so that a slow host
/// (a quota at 1 request/s) still moves.
const MAX_WINDOW_TIME: Duration = Duration::from_millis(500);
/// Growth per healthy window: slow start, then congestion avoidance.
const SLOW_START_RATE: f64 = 2.0;
const SLOW_START_LIMIT: f64 = 1.5;
const AVOIDANCE_RATE: f64 = 1.03;
/// Past the registry's capacity as last measured (what it accepted when it objected),
/// probe gently: 1 % per window at first, 1 % more every [`PROBE_WINDOWS`] windows (the
/// measure may be stale: a registry's capacity changes), up to slow start's pace. Faster
/// probing overshoots a token bucket by more than its burst before the next window.
const PROBE_STEP: f64 = 0.01;
const PROBE_WINDOWS: u32 = 2;
/// Below this share of that rate, recover quickly (×[`RECOVER_RATE`] per window); below
/// half of it, at slow start's pace.
const NEAR_CEILING: f64 = 0.9;
const RECOVER_RATE: f64 = 1.25;
/// How far back the rate the registry accepts is measured, in buckets.
const DELIVERY_BUCKETS: usize = 20;
const DELIVERY_BUCKET: Duration = Duration::from_millis(100);
/// After a congested window the rate becomes this share of what the registry accepted
/// lately, within these bounds relative to the rate sent (a 429 says "less" explicitly, a
/// failure less clearly; never more than a quarter at once).
const ACCEPTED_SHARE: f64 = 0.9;
const KEEP_THROTTLED: f64 = 0.9;
const KEEP_FAILED: f64 = 0.8;
const KEEP_MIN: f64 = 0.25;
/// A rate above this multiple of what the registry accepted was not what was sent.
const SENT_OVER_ACCEPTED: f64 = 2.0;
/// Concurrency decrease factors.
const LIMIT_THROTTLED: f64 = 0.5;
const LIMIT_FAILED: f64 = 0.75;
/// A decrease is judged after this many answers, or this long.
const CHECK_ANSWERS: u32 = 32;
const CHECK_TIME: Duration = Duration::from_secs(3);
/// Weight of each answer in the recent failure fraction (about the last 32 answers).
const RECENT_WEIGHT: f64 = 1.0 / 32.0;
/// A failure fraction that stays at this share of what it was after a decrease did not
/// depend on the load.
const UNCHANGED: f64 = 0.8;
/// Per window that shows less failures than the noise learned.
const NOISE_FADE: f64 = 0.98;
/// Above this failure fraction the registry is overloaded whatever noise it has: never
/// learned as noise.
const MAX_NOISE: f64 = 0.5;
/// Latency limits, as multiples of the baseline.
const LATENCY_GROWTH: f64 = 2.0;
const LATENCY_BACKOFF: f64 = 3.0;
/// Latency-based back-off never takes the limit below this (errors may, not latency).
const LATENCY_FLOOR: usize = 4;
/// Latency counts as queueing only once it adds at least this much to the baseline. At a
/// registry across a network (a baseline of tens of milliseconds) the multiples above
/// bind first; at a loopback or LAN registry answering in a fraction of a millisecond,
/// the machine's own scheduling triples that now and then, which is no queue at the
/// registry (the solo test of the concurrency limit's growth failed on it in CI).
const MIN_QUEUE_DELAY: Duration = Duration::from_millis(10);
/// Samples before the smoothed latency is trusted as a baseline (it starts from one).
const WARMUP: u32 = 16;
/// The response deadline never adapts below this: a loaded machine must not turn every
/// slow answer into a retry.
pub(crate) const MIN_RESPONSE_DEADLINE: Duration = Duration::from_secs(1);
/// A request safe to send twice is sent again after this long at least, however fast the host usually
/// answers: on a busy machine a few tens of milliseconds is an ordinary pause.
pub(crate) const MIN_HEDGE_DELAY: Duration = Duration::from_millis(100);
/// The response deadline before a host's latency is known: seconds, as for any small
/// request, not the cap (a registry that is merely slow to start answers within it).
pub(crate) const UNKNOWN_LATENCY_DEADLINE: Duration = Duration::from_secs(10);

/// What a host may do: where it starts and the hard ceilings the user set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bounds {
    /// `--registry-rate-limit`: requests per second never exceeded (`None`: no ceiling).
    pub max_rate: Option<f64>,
    /// `--registry-max-concurrency`.
    pub max_limit: usize,
}

impl Bounds {
    fn clamp_rate(&self, rate: f64) -> f64 {
        let rate = rate.max(MIN_RATE);
        self.max_rate.map_or(rate, |max| rate.min(max))
    }

    fn clamp_limit(&self, limit: usize) -> usize {
        limit.clamp(1, self.max_limit.max(1))
    }
}

/// How an answer went, as far as load is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Any answer without a sign of overload (a 404 included).
    Healthy,
    /// 429, or 503 with `Retry-After`: the registry said "too much".
    Throttled,
    /// Other 5xx, a timeout, a reset, a stall.
    Failed,
}

/// What the gate knew when a request went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    /// The controller's epoch then: answers from before the last decrease do not count.
    pub epoch: u64,
    pub at: Instant,
    /// It waited for its rate slot: the rate is what holds requests back.
    pub rate_bound: bool,
    /// Every concurrency slot was busy: the limit is what holds requests back.
    pub slots_bound: bool,
}

/// A change of budget, for the log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Change {
    Grew,
    /// Lowered after a congested window: mostly throttling (`true`) or failures.
    Decreased {
        throttled: bool,
    },
    /// A decrease undone: the failures went on at the lower rate, so they were noise.
    Undone {
        noise: f64,
    },
    /// Back near the last accepted rate after an exhausted quota window.
    Recovered,
    /// The latency rose: one slot less.
    Queueing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    SlowStart,
    Avoidance,
}

/// Answers to requests of the current epoch since the last window closed.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    answers: u32,
    healthy: u32,
    throttled: u32,
    failed: u32,
    rate_bound: u32,
    slots_bound: u32,
    /// Requests the budget held back (rate or slots): kpromo had more to send.
    held: u32,
}

impl Window {
    fn new(start: Instant) -> Self {
        Self {
            start,
            answers: 0,
            healthy: 0,
            throttled: 0,
            failed: 0,
            rate_bound: 0,
            slots_bound: 0,
            held: 0,
        }
    }

    fn signals(&self) -> u32 {
        self.throttled + self.failed
    }
}

/// A decrease under review: what it replaced, the failure fraction that provoked it, and
/// what came since.
#[derive(Debug, Clone, Copy)]
struct Check {
    rate: f64,
    limit: usize,
    phase: Phase,
    started: Instant,
    /// The recent failure fraction when it was decided.
    fraction: f64,
    /// Healthy answers per second the registry gave just before it, if that measured the
    /// registry: the budget held requests back over the span measured. Otherwise kpromo
    /// had no more to send for part of it, and what the registry accepted was the demand
    /// (a trickle of plan requests), not its capacity.
    accepted: Option<f64>,
    /// Signals and answers since.
    after: (u32, u32),
}

/// The budget before a run of decreases, to come back to when the registry is healthy
/// again (an exhausted quota window ended).
#[derive(Debug, Clone, Copy)]
struct Before {
    rate: f64,
    limit: usize,
    /// Most answers were refused at some point of the run (an exhausted quota refuses
    /// every request); only then is a healthy window the end of a quota window.
    overloaded: bool,
}

/// How a check of a decrease came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Failures dropped clearly: the load was the cause.
    Helped,
    /// Failures went on as before: not the load.
    Noise,
    /// Failures dropped, over too few answers to tell (a trickle cut short by
    /// [`CHECK_TIME`]): undo the decrease, learn nothing from it.
    Unclear,
    /// Cannot tell yet.
    Pending,
}

/// Healthy answers per second over the last two seconds: what the registry accepts. A
/// window is too short to say (a token bucket's burst inflates it).
#[derive(Debug, Clone)]
struct Delivery {
    origin: Instant,
    /// Healthy answers per bucket, the bucket of index `newest` last.
    buckets: [u32; DELIVERY_BUCKETS],
    newest: u64,
}

impl Delivery {
    fn new(origin: Instant) -> Self {
        Self {
            origin,
            buckets: [0; DELIVERY_BUCKETS],
            newest: 0,
        }
    }

    fn index(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(elapsed / DELIVERY_BUCKET.as_nanos()).unwrap_or(u64::MAX)
    }

    fn advance(&mut self, now: Instant) {
        let index = self.index(now);
        let stale = index.saturating_sub(self.newest).min(DELIVERY_BUCKETS as u64);
        for i in 0..stale {
            self.buckets[((self.newest + 1 + i) % DELIVERY_BUCKETS as u64) as usize] = 0;
        }
        self.newest = self.newest.max(index);
    }

    fn healthy(&mut self, now: Instant) {
        self.advance(now);
        self.buckets[(self.newest % DELIVERY_BUCKETS as u64) as usize] += 1;
    }

    /// Healthy answers per second over the span covered (all of it once two seconds old).
    fn rate(&mut self, now: Instant) -> f64 {
        self.advance(now);
        f64::from(self.buckets.iter().sum::<u32>()) / self.span().as_secs_f64()
    }

    /// The span [`Self::rate`] covers, as of the last bucket advanced to.
    fn span(&self) -> Duration {
        DELIVERY_BUCKET * (self.newest + 1).min(DELIVERY_BUCKETS as u64) as u32
    }
}

/// Time to response headers of requests without a body.
///
/// The baseline is the lowest smoothed value of the run: a baseline that followed latency
/// up would follow the queueing this very budget causes. Smoothing keeps one lucky fast
/// answer from becoming the baseline. The variance gives the response deadline (RFC 6298's
/// retransmission timeout: smoothed + 4 × variance).
#[derive(Debug, Clone, Copy, Default)]
struct Latency {
    samples: u32,
    smoothed: f64,
    variance: f64,
    baseline: Option<f64>,
}

impl Latency {
    fn observe(&mut self, sample: Duration) {
        let sample = sample.as_secs_f64();
        self.samples = self.samples.saturating_add(1);
        if self.samples == 1 {
            self.smoothed = sample;
            self.variance = sample / 2.0;
        } else {
            self.variance += ((sample - self.smoothed).abs() - self.variance) / 4.0;
            self.smoothed += (sample - self.smoothed) / 8.0;
        }
        if self.samples >= WARMUP {
            self.baseline = Some(self.baseline.map_or(self.smoothed, |b| b.min(self.smoothed)));
        }
    }

    /// The smoothed latency as a multiple of the baseline (1 without one, or while it adds
    /// less than [`MIN_QUEUE_DELAY`]: no evidence of a queue).
    fn inflation(&self) -> f64 {
        match self.baseline {
            Some(b) if b > 0.0 && self.smoothed - b >= MIN_QUEUE_DELAY.as_secs_f64() => self.smoothed / b,
            _ => 1.0,
        }
    }
}

/// One host's controller.
#[derive(Debug, Clone)]
pub(crate) struct Controller {
    bounds: Bounds,
    rate: f64,
    limit: usize,
    phase: Phase,
    /// The limit's own phase: latency that shows a queue ends its slow start (and only
    /// its), as "too many" and failures end both.
    limit_phase: Phase,
    /// The rate at which the registry last objected (confirmed congestion), and the
    /// healthy windows since the rate passed it.
    ceiling: Option<f64>,
    probes: u32,
    epoch: u64,
    window: Window,
    latency: Latency,
    /// Failure fraction of the last few dozen answers.
    recent: f64,
    /// How long failures take to show (smoothed): a stall shows only at its deadline, so a
    /// check must last longer than that to see the stalls of requests sent after it began.
    failure_delay: Duration,
    /// Fraction of answers that fail whatever the load (learned).
    noise: f64,
    check: Option<Check>,
    before: Option<Before>,
    delivery: Delivery,
    /// The highest rate the registry accepted by the end of a healthy window (decaying).
    best_delivered: f64,
    /// Since when the budget has held requests back, window after window (`None`: the last
    /// window was not held back, kpromo had no more to send).
    held_since: Option<Instant>,
}

impl Controller {
    pub(crate) fn new(bounds: Bounds, now: Instant) -> Self {
        Self {
            bounds,
            rate: bounds.clamp_rate(START_RATE),
            limit: bounds.clamp_limit(START_LIMIT),
            phase: Phase::SlowStart,
            limit_phase: Phase::SlowStart,
            ceiling: None,
            probes: 0,
            epoch: 0,
            window: Window::new(now),
            latency: Latency::default(),
            recent: 0.0,
            failure_delay: Duration::ZERO,
            noise: 0.0,
            check: None,
            before: None,
            delivery: Delivery::new(now),
            best_delivered: 0.0,
            held_since: None,
        }
    }

    /// Requests per second now.
    pub(crate) fn rate(&self) -> f64 {
        self.rate
    }

    /// Requests in flight now.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    pub(crate) fn bounds(&self) -> Bounds {
        self.bounds
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The fraction of answers learned as noise.
    pub(crate) fn noise(&self) -> f64 {
        self.noise
    }

    /// How long to wait for the response headers of a small request before calling it a
    /// stall: the smoothed latency plus four variances, within [`MIN_RESPONSE_DEADLINE`]
    /// and `cap`. Until the latency is known, [`UNKNOWN_LATENCY_DEADLINE`] (or `cap`, if
    /// lower): a registry that hangs early must not cost a minute per hung request.
    pub(crate) fn response_deadline(&self, cap: Duration) -> Duration {
        match self.slowest_usual() {
            None => UNKNOWN_LATENCY_DEADLINE.min(cap),
            Some(rto) => rto.max(MIN_RESPONSE_DEADLINE).min(cap),
        }
    }

    /// How long a request safe to send twice may wait for its answer before a second copy
    /// of it is sent (`Gate::hedge_delay`): longer than nearly every answer of this host,
    /// and at least [`MIN_HEDGE_DELAY`]. `None` until the latency is known.
    pub(crate) fn hedge_delay(&self) -> Option<Duration> {
        self.slowest_usual().map(|rto| rto.max(MIN_HEDGE_DELAY))
    }

    /// The smoothed latency plus four variances (TCP's retransmission timeout), once the
    /// latency is known: few healthy answers take longer.
    fn slowest_usual(&self) -> Option<Duration> {
        (self.latency.samples >= WARMUP)
            .then(|| Duration::from_secs_f64((self.latency.smoothed + 4.0 * self.latency.variance).max(0.0)))
    }

    /// Records an answer (or a failure to get one) to a request sent as `sent`. `latency`
    /// is the time to response headers of a bodyless request. Returns the change of budget
    /// this answer completed, if any.
    pub(crate) fn observe(
        &mut self,
        sent: Sent,
        outcome: Outcome,
        latency: Option<Duration>,
        now: Instant,
    ) -> Option<Change> {
        if outcome == Outcome::Healthy {
            if let Some(sample) = latency {
                self.latency.observe(sample);
            }
            self.delivery.healthy(now);
        }
        let signal = if outcome == Outcome::Healthy {
            0.0
        } else {
            let delay = now.saturating_duration_since(sent.at);
            self.failure_delay = if delay > self.failure_delay {
                delay
            } else {
                self.failure_delay - (self.failure_delay - delay) / 4
            };
            1.0
        };
        self.recent += (signal - self.recent) * RECENT_WEIGHT;
        // Sent under an older budget: says nothing about this one.
        if sent.epoch != self.epoch {
            return None;
        }
        let w = &mut self.window;
        w.answers += 1;
        match outcome {
            Outcome::Healthy => w.healthy += 1,
            Outcome::Throttled => w.throttled += 1,
            Outcome::Failed => w.failed += 1,
        }
        w.rate_bound += u32::from(sent.rate_bound);
        w.slots_bound += u32::from(sent.slots_bound);
        w.held += u32::from(sent.rate_bound || sent.slots_bound);
        let full = w.answers >= MIN_WINDOW.max(u32::try_from(self.limit).unwrap_or(u32::MAX));
        let long = now.saturating_duration_since(w.start) >= MAX_WINDOW_TIME;
        if full || long { self.close(now) } else { None }
    }

    fn close(&mut self, now: Instant) -> Option<Change> {
        let w = std::mem::replace(&mut self.window, Window::new(now));
        self.held_since = (w.held * 2 >= w.answers).then(|| self.held_since.unwrap_or(w.start));
        let accepted = self.delivery.rate(now);
        let fraction = f64::from(w.signals()) / f64::from(w.answers.max(1));
        if w.signals() == 0
            && let Some(change) = self.recover()
        {
            return Some(change);
        }
        if let Some(mut check) = self.check.take() {
            check.after.0 += w.signals();
            check.after.1 += w.answers;
            let (signals, answers) = check.after;
            if overloaded(signals, answers) {
                // Still overloaded at the lower budget: no noise does that. Lower it again.
                self.ceiling = Some(check.rate);
                let change = self.decrease(&w, accepted, now);
                if let Some(before) = &mut self.before {
                    before.overloaded = true;
                }
                return Some(change);
            }
            match judge(&check, now, self.failure_delay) {
                Verdict::Pending => self.check = Some(check),
                Verdict::Noise => return Some(self.undo(check, true)),
                // The decrease worked: the registry's capacity is about what it accepted
                // then (the rate sent overshot it, or it would not have objected), or what
                // it accepted at its best lately, if more (a quota window that ran out
                // accepted nothing for a while). Unless what it accepted then was only the
                // demand: a ceiling learned from a trickle held the rate near the trickle
                // when the copy came (a fault proxy's random 429s during the plan took a
                // host to 1 request/s, and the run to 13.8× its fault-free time).
                Verdict::Helped => {
                    if let Some(accepted) = check.accepted {
                        let capacity = accepted.max(self.best_delivered * NEAR_CEILING);
                        self.ceiling = Some(capacity.max(MIN_RATE));
                    }
                }
                // Too few answers to tell (a trickle): the cut is undone, as noise would be,
                // but nothing is learned. Kept, it would be what the next random 429 cuts
                // from, at a rate that now holds the trickle back: a ratchet down to the
                // floor. Undone, a registry that really cannot take the trickle says so
                // again at the cost of a request or two, and overload (most answers
                // refused) is acted on whatever the check says.
                Verdict::Unclear => return Some(self.undo(check, false)),
            }
            return None;
        }
        if congested(w.signals(), w.answers, self.noise) {
            return Some(self.decrease(&w, accepted, now));
        }
        // Learned noise fades when windows show less of it (only a check raises it: a
        // noise that followed what windows show would follow an overload up).
        if fraction < self.noise {
            self.noise *= NOISE_FADE;
        }
        self.before = None;
        self.best_delivered = accepted.max(self.best_delivered * 0.99);
        self.grow(&w)
    }

    /// After a run of decreases that cut deep, through overload, a window without failures
    /// means an exhausted quota window has ended: straight back near what the registry
    /// accepted before, instead of crawling up from the floor. (A cut from far above a
    /// trickle is deep too, but a healthy window there is a random 429 not repeating: that
    /// is for the check to judge, and recovering to what the trickle delivered, below
    /// what it asks, would end the check and keep the cut.)
    fn recover(&mut self) -> Option<Change> {
        let before = self.before.filter(|b| b.overloaded)?;
        let target = (self.best_delivered * NEAR_CEILING).min(before.rate);
        if self.rate >= before.rate / 2.0 || target <= self.rate {
            return None;
        }
        self.rate = self.bounds.clamp_rate(target);
        self.limit = self.limit.max(before.limit / 2).max(1);
        self.before = None;
        self.check = None;
        self.epoch += 1;
        Some(Change::Recovered)
    }

    fn grow(&mut self, w: &Window) -> Option<Change> {
        // Latency speaks of the registry's queue, which the limit sizes (requests in flight),
        // not of the rate: a queue that grows shrinks the limit and stops it growing, while
        // the rate grows on as long as it is what holds requests back. (When latency held
        // the rate too, a busy loopback registry, slow to answer against its idle baseline
        // of a fraction of a millisecond, kept a whole promotion near 60 requests per second:
        // six times slower than with the rate out of the way.)
        let inflation = self.latency.inflation();
        if inflation > LATENCY_BACKOFF && self.limit > LATENCY_FLOOR {
            self.limit_phase = Phase::Avoidance;
            self.limit -= 1;
            return Some(Change::Queueing);
        }
        let queueing = inflation > LATENCY_GROWTH;
        if queueing {
            self.limit_phase = Phase::Avoidance;
        }
        let (rate, limit) = (self.rate, self.limit);
        if w.rate_bound * 2 >= w.answers {
            let factor = match (self.phase, self.ceiling) {
                (Phase::SlowStart, _) => SLOW_START_RATE,
                (Phase::Avoidance, Some(c)) if rate < c / 2.0 => SLOW_START_RATE,
                (Phase::Avoidance, Some(c)) if rate < c * NEAR_CEILING => RECOVER_RATE.min(c * NEAR_CEILING / rate),
                (Phase::Avoidance, Some(c)) if rate < c => AVOIDANCE_RATE,
                (Phase::Avoidance, Some(_)) => {
                    self.probes += 1;
                    (1.0 + PROBE_STEP * f64::from(1 + self.probes / PROBE_WINDOWS)).min(SLOW_START_RATE)
                }
                (Phase::Avoidance, None) => AVOIDANCE_RATE,
            };
            self.rate = self.bounds.clamp_rate(rate * factor.max(1.0));
        }
        if w.slots_bound * 2 >= w.answers && !queueing {
            let next = match self.limit_phase {
                Phase::SlowStart => ((limit as f64) * SLOW_START_LIMIT).ceil() as usize,
                Phase::Avoidance => limit + 1,
            };
            self.limit = self.bounds.clamp_limit(next.max(limit));
        }
        (self.rate != rate || self.limit != limit).then_some(Change::Grew)
    }

    fn decrease(&mut self, w: &Window, accepted: f64, now: Instant) -> Change {
        let throttled = w.throttled >= w.failed;
        if self.before.is_none() {
            self.before = Some(Before {
                rate: self.rate,
                limit: self.limit,
                overloaded: false,
            });
        }
        // A window where most answers failed is overload, whatever noise the registry
        // has; a milder one may be noise, and is checked.
        let storm = overloaded(w.signals(), w.answers);
        // Whether what the registry accepted (over the delivery span) measured it: the
        // budget held requests back all that time (within a bucket). Otherwise kpromo had
        // no more to send for part of it, and what was accepted was partly the demand: a
        // trickle, or the trickle still filling most of the span just after the demand rose.
        let measured = self
            .held_since
            .is_some_and(|since| now.saturating_duration_since(since) + DELIVERY_BUCKET >= self.delivery.span());
        if let Some(before) = &mut self.before {
            before.overloaded |= storm;
        }
        if storm {
            // Where this run of decreases began is where the registry objected.
            self.ceiling = self.before.map(|b| b.rate);
        } else if self.check.is_none() {
            self.check = Some(Check {
                rate: self.rate,
                limit: self.limit,
                phase: self.phase,
                started: now,
                fraction: self.recent,
                accepted: measured.then_some(accepted),
                after: (0, 0),
            });
        }
        // What the registry accepted is the best guess of what it takes: in a storm, what it
        // accepted in that window (nothing, when a quota is exhausted); otherwise lately.
        let keep = if throttled { KEEP_THROTTLED } else { KEEP_FAILED };
        // A rate far above what the registry accepted was never what went out (the limit
        // held requests back): a registry that says "too many" is cut from what was
        // plausibly sent, or the cut lands above the real rate and changes nothing.
        // (Failures are about load as much as rate: cut from the rate as it was.)
        let sent = if throttled {
            self.rate.min(accepted.max(MIN_RATE) * SENT_OVER_ACCEPTED)
        } else {
            self.rate
        };
        let target = if storm {
            let elapsed = now.saturating_duration_since(w.start).as_secs_f64().max(1e-3);
            (f64::from(w.healthy) / elapsed * ACCEPTED_SHARE).min(sent * keep)
        } else {
            (accepted * ACCEPTED_SHARE).clamp(sent * KEEP_MIN, sent * keep)
        };
        // Failures without "too many" are met by the limit (below); the rate stops at a
        // floor of its own, or a dead mirror (every answer a quick 502) would see its
        // remaining requests and their retries at one per second: minutes before the run
        // can report it, while the limit alone already keeps the load at one request.
        let floor = if throttled {
            MIN_RATE
        } else {
            MIN_FAILING_RATE.min(sent)
        };
        self.rate = self.bounds.clamp_rate(target.max(floor));
        // "Too many requests" is about the rate, which was just cut: the limit is halved
        // too (the requests in flight were part of the excess) but not below the latency
        // floor, or a registry farther away than a few milliseconds would be held to a
        // few requests per second by the limit alone. Failures may take it to one.
        self.limit = if throttled {
            let halved = (self.limit as f64 * LIMIT_THROTTLED) as usize;
            self.bounds.clamp_limit(halved.max(LATENCY_FLOOR.min(self.limit)))
        } else {
            self.bounds.clamp_limit((self.limit as f64 * LIMIT_FAILED) as usize)
        };
        // A storm, or an objection to what the budget let through, ends slow start; an
        // objection to a trickle says nothing of how much more the registry would take.
        if storm || measured {
            self.phase = Phase::Avoidance;
        }
        self.limit_phase = Phase::Avoidance;
        self.probes = 0;
        self.epoch += 1;
        Change::Decreased { throttled }
    }

    /// The failures went on as before at the lower budget: they are not this client's
    /// doing. Put the budget back and, if `learn`, learn their fraction as noise.
    fn undo(&mut self, check: Check, learn: bool) -> Change {
        if learn {
            let fraction = f64::from(check.after.0) / f64::from(check.after.1.max(1));
            self.noise = self.noise.max(fraction).min(MAX_NOISE);
        }
        self.rate = self.rate.max(check.rate);
        self.limit = self.limit.max(check.limit);
        self.phase = check.phase;
        self.before = None;
        self.epoch += 1;
        Change::Undone { noise: self.noise }
    }
}

/// Whether most of `answers` failed: overload, whatever noise the registry has. Over at
/// least [`MIN_WINDOW`] answers: a window closed by time at a trickle holds one or two, and
/// one random 429 there is not a storm (it was one, and took the rate to its floor).
fn overloaded(signals: u32, answers: u32) -> bool {
    answers >= MIN_WINDOW && f64::from(signals) / f64::from(answers) > MAX_NOISE
}

/// Whether `signals` of `answers` exceed what `noise` explains by more than chance (two
/// and a half standard deviations, and half a signal: with no noise, any signal counts).
fn congested(signals: u32, answers: u32, noise: f64) -> bool {
    if signals == 0 {
        return false;
    }
    let n = f64::from(answers);
    let expected = noise * n;
    let spread = (n * noise * (1.0 - noise)).sqrt();
    f64::from(signals) > expected + 2.5 * spread + if noise > 0.0 { 0.5 } else { 0.0 }
}

/// Compares the failure fraction since a decrease with the one before it. Clearly lower
/// (under half): the load was the cause. About the same: noise. In between: keep the
/// decrease (the cautious reading). A check runs for [`CHECK_ANSWERS`] answers or
/// [`CHECK_TIME`], and in any case twice as long as failures take to show; cut short by
/// time, a drop is too few answers to tell ([`Verdict::Unclear`]).
fn judge(check: &Check, now: Instant, failure_delay: Duration) -> Verdict {
    let (signals, answers) = check.after;
    let elapsed = now.saturating_duration_since(check.started);
    let done = (answers >= CHECK_ANSWERS || elapsed >= CHECK_TIME) && elapsed >= failure_delay * 2;
    if !done || answers == 0 {
        return Verdict::Pending;
    }
    let after = f64::from(signals) / f64::from(answers);
    // Most refused since: overload, not noise, once [`overloaded`] has answers enough to
    // say so; until then the decrease stands (an exhausted quota at a rate cut to one
    // request per second refuses the three it gets in a check: not noise to learn).
    if after > MAX_NOISE {
        return Verdict::Pending;
    }
    // One failure after a decrease may be a straggler; noise repeats.
    if after >= check.fraction * UNCHANGED && signals >= 2 {
        Verdict::Noise
    } else if answers < CHECK_ANSWERS {
        // Cut short by time: at 15 % random 429s, 9 answers show fewer than two 429s more
        // often than not, so "fewer failures" here is no evidence the load was the cause.
        Verdict::Unclear
    } else {
        Verdict::Helped
    }
}

#[cfg(test)]
mod tests;
