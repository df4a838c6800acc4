//! Spacing requests at a rate, with a burst allowance.
//!
//! GCRA (the "virtual scheduling" form of a token bucket): one timestamp, the theoretical
//! arrival time of the next request, so the rate can change at any moment without losing
//! the bucket's state (governor's quota is fixed at construction, governor#273). Each
//! request reserves its slot: a time at which it may go out. Used by each host's gate
//! (at the controller's rate) and by a quota group shared by several hosts (at its fixed
//! budget).
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    interval: Duration,
    /// How far ahead of the schedule a burst may run.
    tolerance: Duration,
    burst: u32,
    /// Theoretical arrival time of the next request.
    next: Instant,
}

impl Pacer {
    /// `rate` requests per second, of which up to `burst` may go out at once.
    pub(crate) fn new(rate: f64, burst: u32, now: Instant) -> Self {
        let burst = burst.max(1);
        let interval = interval_of(rate);
        Self {
            interval,
            tolerance: interval.saturating_mul(burst - 1),
            burst,
            next: now,
        }
    }

    /// Changes the rate from `now` on. Requests already promised a slot keep it; the
    /// schedule's backlog (or saved-up burst) is kept as a number of requests, so a slower
    /// rate spreads it out and a faster one shortens it.
    pub(crate) fn set_rate(&mut self, rate: f64, now: Instant) {
        let interval = interval_of(rate);
        if self.next > now {
            let ahead = (self.next - now).as_secs_f64();
            self.next = now + Duration::from_secs_f64(ahead * interval.as_secs_f64() / self.interval.as_secs_f64());
        }
        self.interval = interval;
        self.tolerance = interval.saturating_mul(self.burst - 1);
    }

    /// Changes how many requests may go out at once (at least one). A registry that has
    /// said "too many" has a bucket of its own whose burst is unknown: evenly spaced
    /// requests never meet its end, a burst saved up during a pause may.
    pub(crate) fn set_burst(&mut self, burst: u32, now: Instant) {
        self.burst = burst.max(1);
        self.tolerance = self.interval.saturating_mul(self.burst - 1);
        self.drain(now);
    }

    /// Spends any burst allowance saved up: after a decrease the registry gets the new rate
    /// at once, not a burst of credit earned at the old one (a burst right after a
    /// decrease is what makes a rate-limited registry answer 429 again).
    pub(crate) fn drain(&mut self, now: Instant) {
        self.next = self.next.max(now + self.tolerance);
    }

    /// Reserves the next slot: the earliest time, at or after `now`, at which a request
    /// may go out.
    pub(crate) fn reserve(&mut self, now: Instant) -> Instant {
        let slot = now.max(self.next.checked_sub(self.tolerance).unwrap_or(now));
        self.next = self.next.max(slot) + self.interval;
        slot
    }
}

/// Rates are clamped far from zero by their callers; this only keeps the arithmetic finite
/// whatever they pass.
fn interval_of(rate: f64) -> Duration {
    Duration::from_secs_f64(1.0 / rate.max(1e-3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_burst_goes_at_once_then_requests_are_spaced() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(100.0, 3, t0);
        let slots: Vec<Duration> = (0..6).map(|_| pacer.reserve(t0) - t0).collect();
        assert_eq!(slots, [ms(0), ms(0), ms(0), ms(10), ms(20), ms(30)]);
    }

    #[test]
    fn idle_time_refills_the_burst_but_no_more() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(10.0, 2, t0);
        pacer.reserve(t0);
        pacer.reserve(t0);
        assert_eq!(pacer.reserve(t0) - t0, ms(100));
        // A long pause: two may go at once again, the third waits its interval.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(pacer.reserve(later), later);
        assert_eq!(pacer.reserve(later), later);
        assert_eq!(pacer.reserve(later) - later, ms(100));
    }

    #[test]
    fn the_rate_changes_without_losing_the_schedule() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(100.0, 1, t0);
        assert_eq!(pacer.reserve(t0) - t0, ms(0));
        assert_eq!(pacer.reserve(t0) - t0, ms(10));
        // Two requests' worth of schedule (20 ms at 100/s) becomes 200 ms at 10/s.
        pacer.set_rate(10.0, t0);
        assert_eq!(pacer.reserve(t0) - t0, ms(200));
        assert_eq!(pacer.reserve(t0) - t0, ms(300));
        // And back: 400 ms ahead at 10/s is 4 requests, 40 ms at 100/s.
        pacer.set_rate(100.0, t0);
        assert_eq!(pacer.reserve(t0) - t0, ms(40));
    }

    #[test]
    fn draining_leaves_no_burst() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(100.0, 4, t0);
        let later = t0 + Duration::from_secs(1);
        pacer.drain(later);
        let slots: Vec<Duration> = (0..3).map(|_| pacer.reserve(later) - later).collect();
        assert_eq!(slots, [ms(0), ms(10), ms(20)]);
    }

    #[test]
    fn a_smaller_burst_takes_effect_at_once() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(100.0, 16, t0);
        let later = t0 + Duration::from_secs(1);
        pacer.set_burst(1, later);
        let slots: Vec<Duration> = (0..3).map(|_| pacer.reserve(later) - later).collect();
        assert_eq!(slots, [ms(0), ms(10), ms(20)]);
        // And stays after a pause.
        let pause = later + Duration::from_secs(5);
        let slots: Vec<Duration> = (0..2).map(|_| pacer.reserve(pause) - pause).collect();
        assert_eq!(slots, [ms(0), ms(10)]);
    }

    #[test]
    fn over_any_long_span_the_rate_holds() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(50.0, 16, t0);
        let last = (0..1016).map(|_| pacer.reserve(t0)).last().unwrap();
        // 16 at once, then 1000 at 20 ms.
        assert_eq!(last - t0, ms(20_000));
    }
}
