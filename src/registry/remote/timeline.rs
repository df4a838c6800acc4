//! How a value (a host's rate, its concurrency limit) spent its time during a run: the
//! time-weighted minimum, median and maximum, and the time spent at or above a level, for
//! the summary. A run changes its budget thousands of times; only the time per distinct
//! value is kept (values rounded to three significant digits).
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::registry::Spread;

#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    current: f64,
    since: Instant,
    /// Time spent per value, keyed by the value's rounded bits (positive floats order
    /// like their bits).
    time: BTreeMap<u64, Duration>,
}

impl Timeline {
    pub(crate) fn new(value: f64, now: Instant) -> Self {
        Self {
            current: round(value),
            since: now,
            time: BTreeMap::new(),
        }
    }

    pub(crate) fn set(&mut self, value: f64, now: Instant) {
        let value = round(value);
        if value == self.current {
            return;
        }
        self.close(now);
        self.current = value;
    }

    fn close(&mut self, now: Instant) {
        let spent = now.saturating_duration_since(self.since);
        *self.time.entry(self.current.to_bits()).or_default() += spent;
        self.since = now;
    }

    /// The values the run spent its time at, up to `now`, and the value now.
    pub(crate) fn spread(&self, now: Instant) -> Spread {
        let mut all = self.clone();
        all.close(now);
        let total: Duration = all.time.values().sum();
        let values = || {
            all.time
                .iter()
                .filter(|(_, t)| !t.is_zero())
                .map(|(v, t)| (f64::from_bits(*v), *t))
        };
        let min = values().next().map_or(self.current, |(v, _)| v);
        let max = values().next_back().map_or(self.current, |(v, _)| v);
        let mut seen = Duration::ZERO;
        let median = values()
            .find(|(_, t)| {
                seen += *t;
                seen * 2 >= total
            })
            .map_or(self.current, |(v, _)| v);
        Spread {
            min,
            median,
            max,
            last: self.current,
        }
    }

    /// Time spent at or above `level` up to `now`.
    pub(crate) fn time_at_least(&self, level: f64, now: Instant) -> Duration {
        let mut all = self.clone();
        all.close(now);
        let level = round(level);
        all.time
            .iter()
            .filter(|(v, _)| f64::from_bits(**v) >= level)
            .map(|(_, t)| *t)
            .sum()
    }
}

/// Three significant digits.
fn round(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 0.0;
    }
    let scale = 10f64.powi(2 - value.log10().floor() as i32);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_weighted_spread_and_time_at_a_level() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut t = Timeline::new(8.0, t0);
        t.set(16.0, s(1));
        t.set(32.0, s(2));
        t.set(4.0, s(10));
        let spread = t.spread(s(11));
        // 1 s at 8, 1 s at 16, 8 s at 32, 1 s at 4: the median is where half the time is.
        assert_eq!(
            spread,
            Spread {
                min: 4.0,
                median: 32.0,
                max: 32.0,
                last: 4.0
            }
        );
        assert_eq!(t.time_at_least(32.0, s(11)), Duration::from_secs(8));
        assert_eq!(t.time_at_least(100.0, s(11)), Duration::ZERO);
        // Nothing changed yet: the starting value is all there is.
        let fresh = Timeline::new(50.0, t0);
        assert_eq!(fresh.spread(t0).median, 50.0);
    }

    #[test]
    fn values_are_kept_to_three_digits() {
        assert_eq!(round(1234.5678), 1230.0);
        assert_eq!(round(0.0123456), 0.0123);
        assert_eq!(round(50.0), 50.0);
        assert_eq!(round(0.0), 0.0);
    }
}
