//! Canary rollout: which destination registries are written in which wave, and whether a
//! written wave may let the next one start. Pure: Plan computes the waves (so a dry run
//! prints them), Promote runs the copy engine once per wave and asks [`gate`] between
//! waves, after the read-back check (`readback.rs`); the last wave is not read back.
//!
//! Waves split destination *registries*, never a registry's repositories: a mirror is
//! either untouched or written by exactly one wave.
use std::path::PathBuf;

use crate::edges::{EdgeSet, NameId};
use crate::registry::RegistryStats;

/// How the user asked for the rollout to be staged (`--canary`, `--rollout-waves`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutOptions {
    /// Destination registries written first: a registry name as the manifests write it,
    /// or a prefix of one (its host, say).
    pub canaries: Vec<String>,
    /// How many waves in all; `None` means canaries then everything else.
    pub waves: Option<usize>,
    /// Fraction of blobs read back in full (GET, digest-checked); the others are HEADed.
    pub verify_sample: f64,
    /// A wave whose failed requests exceed this fraction of its requests stops the rollout.
    pub max_error_rate: f64,
    /// On a stopped rollout, delete the manifests this run created in the failed wave.
    pub rollback_on_failure: bool,
    /// Testing hook (`--pause-before-verify`): after a wave is written (any but the
    /// last, which is not read back), create this file and wait until it is removed
    /// before reading the wave back, so a test can break a mirror between the write and
    /// the check.
    pub pause_before_verify: Option<PathBuf>,
}

impl Default for RolloutOptions {
    fn default() -> Self {
        Self {
            canaries: Vec::new(),
            waves: None,
            verify_sample: DEFAULT_VERIFY_SAMPLE,
            max_error_rate: DEFAULT_MAX_ERROR_RATE,
            rollback_on_failure: false,
            pause_before_verify: None,
        }
    }
}

/// `--verify-sample` default: one blob in ten is read back in full.
pub const DEFAULT_VERIFY_SAMPLE: f64 = 0.1;
/// `--max-error-rate` default: 5 % of a wave's requests.
pub const DEFAULT_MAX_ERROR_RATE: f64 = 0.05;

impl RolloutOptions {
    /// Whether the run is staged at all. Without `--canary` or `--rollout-waves`, Promote
    /// writes every destination at once and reads nothing back, as before.
    pub fn staged(&self) -> bool {
        !self.canaries.is_empty() || self.waves.is_some()
    }
}

/// One wave: the destination registries it writes, in name order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wave {
    pub registries: Vec<NameId>,
    /// Chosen with `--canary` (as opposed to a share of the remaining destinations).
    pub canary: bool,
}

/// Why the waves cannot be formed; nothing has been written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaveError {
    #[error("--canary {canary}: no destination registry is named so or starts with it (destinations: {})", .destinations.join(", "))]
    UnknownCanary { canary: String, destinations: Vec<String> },
}

/// The waves over every destination registry the edges name: the canaries first (every
/// destination a `--canary` names or prefixes), then the rest split into the remaining
/// waves, contiguous in name order and as even as possible. Without canaries the first
/// wave is the first share. A wave count above the destinations is capped (no empty
/// wave). An empty result means the run is not staged.
pub fn waves(edges: &EdgeSet, options: &RolloutOptions) -> Result<Vec<Wave>, WaveError> {
    if !options.staged() {
        return Ok(Vec::new());
    }
    let mut destinations: Vec<NameId> = edges.edges().iter().map(|e| e.dst_registry).collect();
    destinations.sort_by(|a, b| edges.name(*a).cmp(edges.name(*b)));
    destinations.dedup();
    let mut canaries: Vec<NameId> = Vec::new();
    for canary in &options.canaries {
        let named: Vec<NameId> = destinations
            .iter()
            .copied()
            .filter(|d| edges.name(*d) == canary || edges.name(*d).starts_with(canary.as_str()))
            .collect();
        if named.is_empty() {
            return Err(WaveError::UnknownCanary {
                canary: canary.clone(),
                destinations: destinations.iter().map(|d| edges.name(*d).to_string()).collect(),
            });
        }
        canaries.extend(named);
    }
    canaries.sort_by(|a, b| edges.name(*a).cmp(edges.name(*b)));
    canaries.dedup();
    let rest: Vec<NameId> = destinations.into_iter().filter(|d| !canaries.contains(d)).collect();
    let mut out = Vec::new();
    if !canaries.is_empty() {
        out.push(Wave {
            registries: canaries,
            canary: true,
        });
    }
    let wanted = options.waves.unwrap_or(2).max(1);
    let shares = wanted.saturating_sub(out.len()).max(1).min(rest.len());
    out.extend(split_evenly(&rest, shares).into_iter().map(|registries| Wave {
        registries,
        canary: false,
    }));
    Ok(out)
}

/// `items` in `parts` contiguous runs whose lengths differ by at most one, longer first.
fn split_evenly(items: &[NameId], parts: usize) -> Vec<Vec<NameId>> {
    if parts == 0 {
        return Vec::new();
    }
    let (size, extra) = (items.len() / parts, items.len() % parts);
    let mut out = Vec::with_capacity(parts);
    let mut start = 0;
    for i in 0..parts {
        let len = size + usize::from(i < extra);
        out.push(items[start..start + len].to_vec());
        start += len;
    }
    out
}

/// Requests a wave sent and how many failed, from the destination backends' counters
/// before and after the wave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestTally {
    pub requests: u64,
    pub failed: u64,
}

impl RequestTally {
    /// What `after` counted beyond `before`. A failed request is a 5xx, a 429 or no answer
    /// at all (`ERR`): 404 is how a registry says "absent", which planning and discovery
    /// ask on purpose, and 401 is the start of every authentication.
    pub fn between(before: &RegistryStats, after: &RegistryStats) -> Self {
        let mut tally = Self::default();
        for (key, count) in &after.requests {
            let count = count.saturating_sub(before.requests.get(key).copied().unwrap_or(0));
            let status = key.split_whitespace().nth(1).unwrap_or_default();
            tally.requests += count;
            if status == "ERR" || status == "429" || status.starts_with('5') {
                tally.failed += count;
            }
        }
        tally
    }

    pub fn add(&mut self, other: Self) {
        self.requests += other.requests;
        self.failed += other.failed;
    }

    /// Failed requests per request; 0 for a wave that sent none.
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.failed as f64 / self.requests as f64
        }
    }
}

/// The health gate: whether the rollout may go on after a wave with this many failed
/// requests and this many read-back problems. Copy failures stop it before this is asked.
pub fn gate(tally: RequestTally, readback_problems: usize, max_error_rate: f64) -> Result<(), GateRefusal> {
    if readback_problems > 0 {
        return Err(GateRefusal::Readback(readback_problems));
    }
    if tally.error_rate() > max_error_rate {
        return Err(GateRefusal::ErrorRate {
            tally,
            max: max_error_rate,
        });
    }
    Ok(())
}

/// Why the gate closed.
#[derive(Debug, Clone, PartialEq)]
pub enum GateRefusal {
    /// Failed copies: something the wave had to write is not there.
    Copies(usize),
    /// The read-back found this many problems (each logged).
    Readback(usize),
    ErrorRate {
        tally: RequestTally,
        max: f64,
    },
}

impl std::fmt::Display for GateRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GateRefusal::Copies(n) => write!(f, "{n} copy operations failed"),
            GateRefusal::Readback(n) => write!(f, "the read-back verification found {n} problems"),
            GateRefusal::ErrorRate { tally, max } => write!(
                f,
                "{} of {} requests failed ({:.1} %, above --max-error-rate {:.1} %)",
                tally.failed,
                tally.requests,
                tally.error_rate() * 100.0,
                max * 100.0
            ),
        }
    }
}

/// Where and why a rollout stopped, for the run's error.
#[derive(Debug, Clone)]
pub struct Stopped {
    /// The wave that failed (from 1), of how many.
    pub wave: usize,
    pub waves: usize,
    /// Its destination registries.
    pub registries: Vec<String>,
    pub why: GateRefusal,
    /// Destination registries no wave wrote.
    pub untouched: Vec<String>,
    /// The first read-back problem, if that is why.
    pub first: Option<super::readback::Problem>,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rollout stopped after wave {} of {} ({}): {}; ",
            self.wave,
            self.waves,
            self.registries.join(", "),
            self.why
        )?;
        if self.untouched.is_empty() {
            write!(f, "no destination was left untouched")?;
        } else {
            write!(f, "not written: {}", self.untouched.join(", "))?;
        }
        if let Some(first) = &self.first {
            write!(f, "; first: {first}")?;
        }
        Ok(())
    }
}

/// Whether a blob is among the `sample` fraction read back in full. Decided by the digest
/// itself, so reruns and shards read the same blobs and a test can ask for all of them
/// (`1`) or none (`0`).
pub fn sampled(digest: &crate::digest::Digest, sample: f64) -> bool {
    if sample >= 1.0 {
        return true;
    }
    let bytes = digest.as_bytes();
    let head = u64::from_be_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
    ]);
    (head as f64) < sample * (u64::MAX as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

    /// An edge set with one image going to each of `destinations`.
    fn edges_to(destinations: &[&str]) -> EdgeSet {
        let digest = format!("sha256:{}", "a".repeat(64));
        let images = [("a", vec![(digest, vec!["1.0"])])];
        let manifest = Manifest::for_test("m.yaml", "staging.example/s", destinations, &images);
        EdgeSet::from_manifests(&[manifest])
    }

    fn names(edges: &EdgeSet, waves: &[Wave]) -> Vec<Vec<String>> {
        waves
            .iter()
            .map(|w| w.registries.iter().map(|r| edges.name(*r).to_string()).collect())
            .collect()
    }

    fn options(canaries: &[&str], waves: Option<usize>) -> RolloutOptions {
        RolloutOptions {
            canaries: canaries.iter().map(|c| c.to_string()).collect(),
            waves,
            ..RolloutOptions::default()
        }
    }

    const MIRRORS: [&str; 4] = ["asia.example/p", "eu.example/p", "us.example/p", "us2.example/p"];

    #[test]
    fn without_rollout_flags_there_are_no_waves() {
        let edges = edges_to(&MIRRORS);
        assert_eq!(waves(&edges, &RolloutOptions::default()).unwrap(), Vec::new());
    }

    #[test]
    fn canaries_come_first_then_everything_else() {
        let edges = edges_to(&MIRRORS);
        let w = waves(&edges, &options(&["eu.example/p"], None)).unwrap();
        assert_eq!(
            names(&edges, &w),
            [
                vec!["eu.example/p"],
                vec!["asia.example/p", "us.example/p", "us2.example/p"]
            ]
        );
        assert!(w[0].canary && !w[1].canary);
    }

    #[test]
    fn a_canary_may_be_a_prefix_such_as_a_host() {
        let edges = edges_to(&MIRRORS);
        let w = waves(&edges, &options(&["us"], None)).unwrap();
        assert_eq!(
            names(&edges, &w),
            [
                vec!["us.example/p", "us2.example/p"],
                vec!["asia.example/p", "eu.example/p"]
            ]
        );
    }

    #[test]
    fn further_waves_split_the_rest_evenly() {
        let edges = edges_to(&MIRRORS);
        let w = waves(&edges, &options(&["asia.example/p"], Some(3))).unwrap();
        assert_eq!(
            names(&edges, &w),
            [
                vec!["asia.example/p"],
                vec!["eu.example/p", "us.example/p"],
                vec!["us2.example/p"]
            ]
        );
        let w = waves(&edges, &options(&[], Some(2))).unwrap();
        assert_eq!(
            names(&edges, &w),
            [
                vec!["asia.example/p", "eu.example/p"],
                vec!["us.example/p", "us2.example/p"]
            ]
        );
        // More waves than destinations: one destination each, no empty wave.
        let w = waves(&edges, &options(&[], Some(9))).unwrap();
        assert_eq!(w.len(), 4);
        assert!(w.iter().all(|w| w.registries.len() == 1));
    }

    #[test]
    fn canaries_covering_every_destination_make_one_wave() {
        let edges = edges_to(&MIRRORS);
        let w = waves(&edges, &options(&["a", "e", "u"], None)).unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].registries.len(), 4);
    }

    #[test]
    fn a_canary_that_names_no_destination_is_refused() {
        let edges = edges_to(&MIRRORS);
        let err = waves(&edges, &options(&["mars.example"], None)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("--canary mars.example"), "{text}");
        assert!(text.contains("asia.example/p, eu.example/p"), "{text}");
    }

    #[test]
    fn the_gate_closes_on_readback_problems_and_on_a_high_error_rate() {
        let healthy = RequestTally {
            requests: 100,
            failed: 5,
        };
        assert_eq!(gate(healthy, 0, 0.05), Ok(()));
        assert_eq!(gate(healthy, 1, 0.05), Err(GateRefusal::Readback(1)));
        let sick = RequestTally {
            requests: 100,
            failed: 6,
        };
        let refusal = gate(sick, 0, 0.05).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "6 of 100 requests failed (6.0 %, above --max-error-rate 5.0 %)"
        );
        assert_eq!(gate(RequestTally::default(), 0, 0.0), Ok(()));
    }

    #[test]
    fn failed_requests_are_5xx_429_and_no_answer() {
        let stats = |pairs: &[(&str, u64)]| RegistryStats {
            requests: pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..RegistryStats::default()
        };
        let before = stats(&[("HEAD 404", 10), ("GET 503", 1)]);
        let after = stats(&[
            ("HEAD 404", 30),
            ("GET 503", 3),
            ("PUT 429", 1),
            ("PATCH ERR", 1),
            ("GET 401", 4),
            ("PUT 201", 10),
        ]);
        assert_eq!(
            RequestTally::between(&before, &after),
            RequestTally {
                requests: 38,
                failed: 4
            }
        );
    }

    #[test]
    fn sampling_is_by_digest_and_covers_the_extremes() {
        let digests: Vec<crate::digest::Digest> = (0u8..200).map(|i| crate::digest::Digest::of(&[i])).collect();
        assert!(digests.iter().all(|d| sampled(d, 1.0)));
        assert!(!digests.iter().any(|d| sampled(d, 0.0)));
        let some = digests.iter().filter(|d| sampled(d, 0.25)).count();
        assert!((25..=75).contains(&some), "{some} of 200 at 25 %");
        assert_eq!(
            digests.iter().filter(|d| sampled(d, 0.25)).count(),
            some,
            "the same every time"
        );
    }
}
