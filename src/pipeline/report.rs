//! The end-of-run report: logged for humans, written by the CLI with `--summary-json` for
//! CI and benchmarks (request counts per registry make "a rerun writes nothing"
//! checkable).
use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tracing::info;

use crate::copy::{Class, Counters};
use crate::registry::{RegistryStats, SpoolFigures, ThrottleStats};

use super::Error;
use super::plan::Counts;
use super::state::{AttestReport, Attested, ProvenanceRecord, Requests, RunState, SignReport};
use crate::trust::provenance::Outcome;

/// What a run did, including a failed one.
#[derive(Debug, Serialize)]
pub struct RunReport {
    /// `ok`, or the error that ended the run.
    pub outcome: String,
    pub dry_run: bool,
    /// `INDEX/COUNT` when the run promoted one shard (`kpromo summary merge` adds them up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub manifests: usize,
    pub edges: usize,
    /// Edge decisions.
    pub decisions: Counts,
    /// Edges the policy denied (0 without `--policy`).
    pub policy_denied: usize,
    #[serde(flatten)]
    pub promote: Counters,
    /// What the Provenance phase found, source image by source image.
    pub provenance: ProvenanceSummary,
    /// What the Sign phase did, image by image.
    pub signatures: SignReport,
    /// Canary waves, their read-back and any rollback; absent when the run is not staged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutReport>,
    /// What the Attest phase did, image by image.
    pub attestations: AttestSummary,
    /// Every image not promoted, with whether a rerun helps (`class`).
    pub failed_images: Vec<FailedImageReport>,
    /// Requests sent with a writing method (PUT, POST, PATCH, DELETE), all registries.
    pub write_requests: u64,
    pub retries: u64,
    pub registries: BTreeMap<String, RegistryStats>,
    pub phases_ms: Vec<(String, u128)>,
    /// Registry requests each phase sent, all registries together.
    pub phase_requests: Vec<PhaseRequests>,
    pub total_ms: u128,
}

/// What a staged run did, wave by wave.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RolloutReport {
    /// The waves that ran, in order.
    pub waves: Vec<WaveReport>,
    /// Why the rollout stopped early (`None` when every wave passed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Destination registries no wave wrote because the rollout stopped.
    pub untouched: Vec<String>,
    /// What `--rollback-on-failure` deleted and left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackReport>,
}

/// One wave: where it wrote, what the health gate saw, what the read-back found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WaveReport {
    pub registries: Vec<String>,
    pub canary: bool,
    /// Requests the wave sent to its destination registries, and how many failed.
    pub requests: u64,
    pub failed_requests: u64,
    /// Images delivered by the wave and read back (none for the last wave: not read back).
    pub images: usize,
    pub manifests_verified: usize,
    pub blobs_headed: usize,
    /// Blobs read in full (`--verify-sample`).
    pub blobs_read: usize,
    /// Every read-back problem, `where: what`.
    pub problems: Vec<String>,
    /// Wall time of the wave's copy, and of its read-back.
    pub copy_ms: u128,
    pub readback_ms: u128,
    /// What the wave's copy kept in the rollout's spool for later waves, and read from
    /// it instead of the sources (absent when the run had no spool).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spool: Option<SpoolFigures>,
    /// `passed`, or why the gate closed; for the last wave, which is not read back since
    /// no later wave waits on it, `not read back: last wave, nothing left to gate` (or
    /// why it failed, when its copies did).
    pub verdict: String,
}

/// What a rollback did on the wave that failed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RollbackReport {
    /// `registry/image@digest` of every manifest this run created and then deleted.
    pub deleted: Vec<String>,
    /// `registry/image:tag` this run added to manifests that existed before: left in
    /// place (see docs/rollout.md).
    pub tags_left: Vec<String>,
    /// Deletions that failed: `registry/image@digest: why`.
    pub failed: Vec<String>,
}

/// The registry requests of one phase.
#[derive(Debug, Serialize)]
pub struct PhaseRequests {
    pub phase: String,
    #[serde(flatten)]
    pub requests: Requests,
}

/// The Provenance phase in the summary: counts per outcome, and each source image.
#[derive(Debug, Serialize)]
pub struct ProvenanceSummary {
    pub verified: usize,
    pub absent: usize,
    pub ignored: usize,
    pub failed: usize,
    pub images: Vec<ProvenanceRecord>,
}

/// The Attest phase in the summary: counts, each image, each failure.
#[derive(Debug, Serialize)]
pub struct AttestSummary {
    /// Images attested by this run.
    pub attested: usize,
    /// Images found attested by this signer already.
    pub already_attested: usize,
    pub failed: usize,
    /// Staging referrers copied to a canonical destination.
    pub carried: usize,
    /// Referrers copied to the other destinations (`--replicate-signatures`).
    pub replicated: usize,
    pub images: Vec<Attested>,
    /// Reference and why, for each failure.
    pub failures: Vec<(String, String)>,
}

/// One image a run did not promote.
#[derive(Debug, Serialize)]
pub struct FailedImageReport {
    /// `registry/image@digest`, the registry as the manifests name it.
    pub image: String,
    pub tags: Vec<String>,
    /// `transient` (a rerun converges) or `permanent` (fix the source or the manifest).
    pub class: Class,
    /// What stopped it.
    pub reason: String,
}

impl RunReport {
    pub(super) fn of(state: &RunState, total: Duration, error: Option<&Error>) -> Self {
        let edges = &state.edges;
        let failed_images = state
            .promote
            .failed
            .iter()
            .map(|f| FailedImageReport {
                image: format!(
                    "{}/{}@{}",
                    edges.name(f.destination.registry),
                    edges.name(f.destination.image),
                    f.digest
                ),
                tags: f.tags.clone(),
                class: f.failure.class(),
                reason: f.failure.to_string(),
            })
            .collect();
        let registries: BTreeMap<String, RegistryStats> = state
            .backends()
            .into_iter()
            .map(|(name, registry)| (name, registry.stats()))
            .collect();
        let write_requests = registries
            .values()
            .flat_map(|s| s.requests.iter())
            .filter(|(counter, _)| Requests::is_write(counter))
            .map(|(_, n)| n)
            .sum();
        Self {
            outcome: error.map_or_else(|| "ok".to_string(), |e| format!("{e}")),
            dry_run: !state.options.confirm,
            shard: state.options.shard.map(|s| s.to_string()),
            manifests: state.manifests,
            edges: state.edges.len(),
            decisions: Counts::of(&state.decisions),
            policy_denied: state.policy_denied,
            promote: state.promote.counters.clone(),
            provenance: ProvenanceSummary::of(&state.provenance_report),
            signatures: state.signing.clone(),
            rollout: state.rollout.clone(),
            attestations: AttestSummary::of(&state.attesting),
            failed_images,
            write_requests,
            retries: registries.values().map(|s| s.retries).sum(),
            phases_ms: state
                .phases
                .iter()
                .map(|t| (t.name.to_string(), t.took.as_millis()))
                .collect(),
            phase_requests: state
                .phases
                .iter()
                .map(|t| PhaseRequests {
                    phase: t.name.to_string(),
                    requests: t.requests,
                })
                .collect(),
            total_ms: total.as_millis(),
            registries,
        }
    }

    /// Logs the report, a few lines for the whole run and one per registry.
    pub fn log(&self) {
        let d = &self.decisions;
        info!(
            "summary: {} edges: {} copied, {} retagged, {} already promoted, {} lost, {} tag moves",
            self.edges, d.copy, d.retag, d.skip, d.lost, d.tag_moves
        );
        info!(
            "summary: {} manifests and {} tags pushed; blobs: {} uploaded, {} mounted, {} present; {} bytes read from sources, {} uploaded",
            self.promote.manifests_pushed,
            self.promote.tags_pushed,
            self.promote.blobs_uploaded,
            self.promote.blobs_mounted,
            self.promote.blobs_present,
            self.promote.source_bytes_read,
            self.promote.bytes_uploaded
        );
        let signed = &self.signatures.signed;
        if !signed.is_empty() || !self.signatures.failed.is_empty() {
            info!(
                "summary: signatures: {} new, {} already there, {} failed, {} replicated",
                signed.iter().filter(|s| s.newly).count(),
                signed.iter().filter(|s| !s.newly).count(),
                self.signatures.failed.len(),
                self.signatures.replicated
            );
        }
        let p = &self.provenance;
        if !p.images.is_empty() {
            info!(
                "summary: provenance: {} verified, {} absent, {} ignored, {} failed",
                p.verified, p.absent, p.ignored, p.failed
            );
        }
        let a = &self.attestations;
        if a.attested + a.already_attested + a.failed > 0 {
            info!(
                "summary: attestations: {} new, {} already there, {} failed; {} staging referrers carried, {} replicated",
                a.attested, a.already_attested, a.failed, a.carried, a.replicated
            );
        }
        for failed in &self.failed_images {
            info!(
                "summary: not promoted ({}: {}): {}{}: {}",
                failed.class,
                failed.class.advice(),
                failed.image,
                if failed.tags.is_empty() {
                    String::new()
                } else {
                    format!(" (tags {})", failed.tags.join(", "))
                },
                failed.reason
            );
        }
        for (name, stats) in &self.registries {
            let total: u64 = stats.requests.values().sum();
            let concurrency = stats.concurrency.map_or_else(String::new, |c| {
                format!(
                    "; concurrency limit {} (peak {}, lowest {}), at most {} in flight",
                    c.limit, c.peak, c.lowest, c.in_flight_peak
                )
            });
            info!(
                "summary: {name}: {total} requests {:?}, {} retries{concurrency}",
                stats.requests, stats.retries
            );
            if let Some(throttling) = &stats.throttling {
                info!("summary: {name}: {}", throttling_text(throttling));
            }
        }
        let phases: Vec<String> = self
            .phases_ms
            .iter()
            .zip(&self.phase_requests)
            .map(|((n, ms), p)| format!("{n} {ms} ms ({} requests)", p.requests.all))
            .collect();
        info!("summary: phases: {}; total {} ms", phases.join(", "), self.total_ms);
    }
}

impl ProvenanceSummary {
    fn of(records: &[ProvenanceRecord]) -> Self {
        let count = |outcome| records.iter().filter(|r| r.outcome == outcome).count();
        Self {
            verified: count(Outcome::Verified),
            absent: count(Outcome::Absent),
            ignored: count(Outcome::Ignored),
            failed: count(Outcome::Failed),
            images: records.to_vec(),
        }
    }
}

impl AttestSummary {
    fn of(report: &AttestReport) -> Self {
        Self {
            attested: report.attested.iter().filter(|a| a.newly).count(),
            already_attested: report.attested.iter().filter(|a| !a.newly).count(),
            failed: report.failed.len(),
            carried: report.carried,
            replicated: report.replicated,
            images: report.attested.clone(),
            failures: report.failed.clone(),
        }
    }
}

/// One line on how a remote registry's adaptive budget moved and what throttling cost:
/// rate and concurrency (time-weighted min/median/max, the ceiling and the time spent at
/// it), the answers that said "too many" or failed, and where requests waited.
fn throttling_text(t: &ThrottleStats) -> String {
    let seconds = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
    let rate_ceiling = t.rate_ceiling.map_or_else(
        || "no ceiling".to_string(),
        |max| format!("ceiling {max:.0}, at it {}", seconds(t.at_rate_ceiling_ms)),
    );
    let quota = t
        .quota
        .as_ref()
        .map_or_else(String::new, |q| format!("; shares quota {q}"));
    format!(
        "rate {:.0}/{:.0}/{:.0} req/s min/median/max ({rate_ceiling}); \
         concurrency {:.0}/{:.0}/{:.0} (ceiling {}, at it {}); \
         {} throttled, {} failed ({} stalls), {} slow reads sent twice, {} decreases ({} undone as noise); \
         waited: slot {}, rate {}, quota {}, retry {}{quota}",
        t.rate_per_s.min,
        t.rate_per_s.median,
        t.rate_per_s.max,
        t.concurrency.min,
        t.concurrency.median,
        t.concurrency.max,
        t.concurrency_ceiling,
        seconds(t.at_concurrency_ceiling_ms),
        t.throttled,
        t.failed,
        t.stalls,
        t.hedged,
        t.decreases,
        t.undone,
        seconds(t.waited_ms.slot),
        seconds(t.waited_ms.rate),
        seconds(t.waited_ms.quota),
        seconds(t.waited_ms.retry),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Spread, Waits};

    #[test]
    fn throttling_reads_as_one_line() {
        let t = ThrottleStats {
            rate_per_s: Spread {
                min: 18.0,
                median: 20.2,
                max: 50.0,
                last: 20.0,
            },
            concurrency: Spread {
                min: 4.0,
                median: 8.0,
                max: 12.0,
                last: 8.0,
            },
            rate_ceiling: Some(100.0),
            at_rate_ceiling_ms: 0,
            concurrency_ceiling: 32,
            at_concurrency_ceiling_ms: 1500,
            throttled: 7,
            failed: 2,
            stalls: 1,
            hedged: 4,
            decreases: 3,
            undone: 1,
            noise: 0.0,
            waited_ms: Waits {
                slot: 100,
                rate: 2500,
                quota: 0,
                retry: 7000,
            },
            quota: Some("*-docker.pkg.dev".into()),
        };
        assert_eq!(
            throttling_text(&t),
            "rate 18/20/50 req/s min/median/max (ceiling 100, at it 0.0 s); \
             concurrency 4/8/12 (ceiling 32, at it 1.5 s); \
             7 throttled, 2 failed (1 stalls), 4 slow reads sent twice, 3 decreases (1 undone as noise); \
             waited: slot 0.1 s, rate 2.5 s, quota 0.0 s, retry 7.0 s; shares quota *-docker.pkg.dev"
        );
    }
}
