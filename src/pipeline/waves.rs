//! Promote, staged (`--canary`, `--rollout-waves`): the copy engine runs once per wave
//! (`rollout::waves`, formed in Plan), and before the next wave starts, what the wave
//! wrote is read back through fresh backends (`readback.rs`) and the health gate
//! (`rollout::gate`) weighs the wave's failed requests and read-back problems. The last
//! wave is not read back: the check exists to gate the next wave, and there is none
//! (its failed copies still fail the run, and roll back with `--rollback-on-failure`). A closed
//! gate stops the rollout: later waves are never started, so their destinations see no
//! write at all, and with `--rollback-on-failure` the manifests this run created in the
//! failed wave are deleted (`rollback.rs`).
//!
//! Signing stays one phase after the last wave (the order Go users know): a signature is
//! written once, at the canonical destination, only for images every wave delivered.
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};

use crate::copy::{self, Repo};
use crate::edges::NameId;
use crate::registry::{Registry, RegistryStats, RepoRoot, Spool};
use crate::sync::Cancel;

use super::readback::{self, Target};
use super::report::{RolloutReport, WaveReport};
use super::rollout::{GateRefusal, RequestTally, Stopped, Wave, gate};
use super::state::{RunState, Subject};
use super::{Error, Flow, promote, rollback};

pub(super) async fn run(state: &mut RunState) -> Result<Flow, Error> {
    let waves = state.waves.clone();
    let total = waves.len();
    let mut report = RolloutReport::default();
    // Sources are read once for all waves: what a wave reads is kept for the next ones.
    let spool = if total > 1 { open_spool() } else { None };
    for (i, wave) in waves.iter().enumerate() {
        let number = i + 1;
        let last = number == total;
        if let (true, Some(spool)) = (last, &spool) {
            spool.stop_keeping();
        }
        let mut wave_report = WaveReport {
            registries: names(state, &wave.registries),
            canary: wave.canary,
            ..WaveReport::default()
        };
        info!(
            "rollout: wave {number}/{total}{}: {}",
            if wave.canary { " (canary)" } else { "" },
            wave_report.registries.join(", ")
        );
        let (request, keys) =
            promote::copy_request(state, |e| wave.registries.contains(&e.dst_registry), spool.as_ref())?;
        let spooled_before = spool.as_ref().map(|s| s.figures());
        let backends = backends(state, wave)?;
        let before: Vec<RegistryStats> = backends.iter().map(|b| b.stats()).collect();
        let delivered_from = state.promote.subjects.len();
        let failures_before = state.promote.failures.len();
        let copy_started = Instant::now();
        if !request.is_empty() {
            let copied = copy::run(&request, &state.cancel).await;
            promote::record(&mut state.promote, copied, &keys);
        }
        wave_report.copy_ms = copy_started.elapsed().as_millis();
        wave_report.spool = spool
            .as_ref()
            .zip(spooled_before)
            .map(|(s, before)| s.figures().since(before));
        if let Some(spooled) = wave_report.spool.filter(|s| s.blobs_served + s.manifests_served > 0) {
            info!(
                "rollout: wave {number}/{total} read {} blobs ({} MB) and {} manifests from the spool instead of the sources",
                spooled.blobs_served,
                spooled.bytes_served >> 20,
                spooled.manifests_served
            );
        }
        let mut tally = RequestTally::default();
        for (backend, before) in backends.iter().zip(&before) {
            tally.add(RequestTally::between(before, &backend.stats()));
        }
        wave_report.requests = tally.requests;
        wave_report.failed_requests = tally.failed;
        let refusal = match state.promote.failures.len() - failures_before {
            // The read-back and the health gate guard the next wave; after the last
            // there is none to guard (a failed copy still fails the run, below).
            0 if !state.cancel.is_cancelled() && !last => {
                pause_before_verify(
                    state.options.rollout.pause_before_verify.as_deref(),
                    number,
                    &state.cancel,
                )
                .await;
                let readback_started = Instant::now();
                let targets = readback_targets(state, &state.promote.subjects[delivered_from..])?;
                wave_report.images = targets.len();
                let outcome = readback::verify(targets, state.options.rollout.verify_sample, &state.cancel).await;
                wave_report.readback_ms = readback_started.elapsed().as_millis();
                wave_report.manifests_verified = outcome.manifests;
                wave_report.blobs_headed = outcome.blobs_headed;
                wave_report.blobs_read = outcome.blobs_read;
                wave_report.problems = outcome.problems.iter().map(ToString::to_string).collect();
                gate(tally, outcome.problems.len(), state.options.rollout.max_error_rate)
                    .err()
                    .map(|why| (why, outcome.problems.into_iter().next()))
            }
            0 => None,
            failed => Some((GateRefusal::Copies(failed), None)),
        };
        if state.cancel.is_cancelled() {
            report.waves.push(wave_report);
            state.rollout = Some(report);
            return Err(Error::Interrupted);
        }
        let Some((why, first)) = refusal else {
            wave_report.verdict = if last {
                info!(
                    "rollout: wave {number}/{total} written ({} of {} requests failed); {LAST_WAVE}",
                    wave_report.failed_requests, wave_report.requests
                );
                LAST_WAVE.into()
            } else {
                info!(
                    "rollout: wave {number}/{total} passed: {} images read back ({} manifests, {} blobs, {} read in full); {} of {} requests failed",
                    wave_report.images,
                    wave_report.manifests_verified,
                    wave_report.blobs_headed,
                    wave_report.blobs_read,
                    wave_report.failed_requests,
                    wave_report.requests
                );
                "passed".into()
            };
            report.waves.push(wave_report);
            continue;
        };
        let untouched: Vec<String> = waves[number..]
            .iter()
            .flat_map(|w| names(state, &w.registries))
            .collect();
        error!(
            "rollout stopped after wave {number}/{total}: {why}; destinations not written: {}",
            if untouched.is_empty() {
                "none".to_string()
            } else {
                untouched.join(", ")
            }
        );
        wave_report.verdict = why.to_string();
        let registries = wave_report.registries.clone();
        report.waves.push(wave_report);
        report.stopped = Some(format!("wave {number}: {why}"));
        report.untouched = untouched.clone();
        if state.options.rollout.rollback_on_failure {
            report.rollback = Some(rollback::run(state, wave).await);
        }
        state.rollout = Some(report);
        if let (GateRefusal::Copies(_), Some(failed)) = (&why, promote::failed(&state.promote)) {
            return Err(failed);
        }
        return Err(Error::RolloutStopped(Box::new(Stopped {
            wave: number,
            waves: total,
            registries,
            why,
            untouched,
            first,
        })));
    }
    state.rollout = Some(report);
    Ok(Flow::Continue)
}

/// The last wave's verdict: it is not read back, since no later wave waits on it.
const LAST_WAVE: &str = "not read back: last wave, nothing left to gate";

/// The spool for a rollout's source reads (`registry::Spool`). Without one (no writable
/// temp directory) every wave reads its sources, as an unstaged run would twice.
fn open_spool() -> Option<Arc<Spool>> {
    match Spool::open(None) {
        Ok(spool) => {
            debug!(
                "rollout: source reads kept in {} for later waves",
                spool.path().display()
            );
            Some(spool)
        }
        Err(e) => {
            warn!("rollout: no spool for source reads ({e}); each wave reads its sources again");
            None
        }
    }
}

fn names(state: &RunState, registries: &[NameId]) -> Vec<String> {
    registries.iter().map(|r| state.edges.name(*r).to_string()).collect()
}

/// The run's backends for the wave's registries, each once (two destination registries
/// on one host share a backend), whose request counters feed the health gate.
fn backends(state: &RunState, wave: &Wave) -> Result<Vec<Arc<dyn Registry>>, Error> {
    let mut by_name: BTreeMap<String, Arc<dyn Registry>> = BTreeMap::new();
    for registry in &wave.registries {
        let root = state
            .roots
            .get(registry)
            .ok_or_else(|| Error::Unopened(state.edges.name(*registry).to_string()))?;
        by_name.insert(root.registry.name().to_string(), root.registry.clone());
    }
    Ok(by_name.into_values().collect())
}

/// The images a wave delivered, each in a repository of a backend opened for the check:
/// nothing the run's own backends hold (tokens, connections, what they saw) is reused,
/// except each host's budget, which is the registry's and not the client's
/// ([`crate::registry::Registries::fresh_connections`]). Tests that inject in-memory registries have no
/// client set to open from and read those.
fn readback_targets(state: &RunState, delivered: &[Subject]) -> Result<Vec<Target>, Error> {
    let fresh = match &state.registries {
        Some(registries) => Some(registries.fresh_connections().map_err(|e| Error::Setup(Box::new(e)))?),
        None => None,
    };
    let mut roots: BTreeMap<NameId, RepoRoot> = BTreeMap::new();
    let mut targets = Vec::with_capacity(delivered.len());
    for subject in delivered {
        let key = subject.destination;
        let repo = match &fresh {
            None => state.repo(key)?,
            Some(registries) => {
                let root = match roots.entry(key.registry) {
                    Entry::Occupied(root) => root.into_mut(),
                    Entry::Vacant(slot) => {
                        let name = state.edges.name(key.registry);
                        slot.insert(registries.open(name).map_err(|source| Error::RegistryName {
                            name: name.to_string(),
                            source: Box::new(source),
                        })?)
                    }
                };
                Repo {
                    registry: root.registry.clone(),
                    path: root.repo(state.edges.name(key.image)),
                    display: state.repo_display(key),
                }
            }
        };
        targets.push(Target {
            repo,
            digest: subject.digest,
            tags: subject.tags.clone(),
        });
    }
    Ok(targets)
}

/// The `--pause-before-verify FILE` testing hook: create FILE (naming the wave), then
/// wait until someone removes it. A file rather than a signal or a socket because any
/// test harness can wait for and delete a file, and without the flag nothing happens.
async fn pause_before_verify(file: Option<&Path>, wave: usize, cancel: &Cancel) {
    let Some(file) = file else {
        return;
    };
    if let Err(e) = std::fs::write(file, format!("wave {wave}\n")) {
        warn!("--pause-before-verify {}: {e}; not pausing", file.display());
        return;
    }
    info!(
        "wave {wave} written; waiting for {} to be removed before reading it back",
        file.display()
    );
    while file.exists() && !cancel.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
