//! `--log-level` and `--log-format`: logs go to stderr so stdout stays clean for
//! snapshot and report output, as in Go kpromo.
use std::fmt;
use std::io::IsTerminal;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::ValueEnum;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// The logrus level names Go kpromo accepts. `fatal` and `panic` have no tracing
/// equivalent: both show errors only.
pub const LEVEL_NAMES: &str = "trace, debug, info, warning (or warn), error, fatal, panic";

/// Parses a logrus level name, case-insensitively like logrus' `ParseLevel`.
pub fn parse_level(s: &str) -> Result<LevelFilter, String> {
    match s.to_ascii_lowercase().as_str() {
        "trace" => Ok(LevelFilter::TRACE),
        "debug" => Ok(LevelFilter::DEBUG),
        "info" => Ok(LevelFilter::INFO),
        "warning" | "warn" => Ok(LevelFilter::WARN),
        "error" | "fatal" | "panic" => Ok(LevelFilter::ERROR),
        _ => Err(format!("not a valid log level: {s:?} (accepted: {LEVEL_NAMES})")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines with `HH:MM:SS.mmm` timestamps (UTC).
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber. Called once; a second call (tests) is a no-op.
pub fn init(level: LevelFilter, format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_timer(UtcClock { full_date: false })
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_ansi(false)
            .with_timer(UtcClock { full_date: true })
            .try_init(),
    };
    // Only fails when a subscriber is already installed, which is fine.
    let _ = result;
}

/// Go kpromo's `15:04:05.000` for text logs; a full RFC 3339 instant for JSON, where a
/// collector needs the date. UTC, because std cannot read the local time zone.
struct UtcClock {
    full_date: bool,
}

impl FormatTime for UtcClock {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let clock = Clock::from_unix_millis(now.as_millis());
        if self.full_date {
            write!(w, "{}", clock.rfc3339())
        } else {
            write!(w, "{}", clock.time_of_day())
        }
    }
}

/// A UTC calendar instant with millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Clock {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
}

impl Clock {
    fn from_unix_millis(ms: u128) -> Self {
        let ms = i64::try_from(ms).unwrap_or(i64::MAX);
        let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
        let (year, month, day) = civil_from_days(days);
        let secs = ms_of_day / 1000;
        Self {
            year,
            month,
            day,
            hour: (secs / 3600) as u32,
            minute: (secs / 60 % 60) as u32,
            second: (secs % 60) as u32,
            millis: (ms_of_day % 1000) as u32,
        }
    }

    fn time_of_day(&self) -> String {
        format!(
            "{:02}:{:02}:{:02}.{:03}",
            self.hour, self.minute, self.second, self.millis
        )
    }

    fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{}Z",
            self.year,
            self.month,
            self.day,
            self.time_of_day()
        )
    }
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_logrus_level_names_case_insensitively() {
        assert_eq!(parse_level("Warning"), Ok(LevelFilter::WARN));
        assert_eq!(parse_level("warn"), Ok(LevelFilter::WARN));
        assert_eq!(parse_level("TRACE"), Ok(LevelFilter::TRACE));
        assert_eq!(parse_level("fatal"), Ok(LevelFilter::ERROR));
        assert_eq!(parse_level("panic"), Ok(LevelFilter::ERROR));
        assert!(parse_level("verbose").unwrap_err().contains("verbose"));
    }

    #[test]
    fn formats_known_instants() {
        // 2026-11-22T16:58:44.123Z
        let c = Clock::from_unix_millis(1_795_366_724_123);
        assert_eq!(c.time_of_day(), "16:58:44.123");
        assert_eq!(c.rfc3339(), "2026-11-22T16:58:44.123Z");
        // Leap day and the epoch.
        assert_eq!(
            Clock::from_unix_millis(951_782_400_000).rfc3339(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(Clock::from_unix_millis(0).rfc3339(), "1970-01-01T00:00:00.000Z");
    }
}
