//! The promotion pipeline: Setup, Plan, Provenance, Validate, Promote, Sign, Attest.
//!
//! Each phase is its own module over one shared, typed run state ([`state::RunState`]).
//! Phases run strictly in order, as in Go kpromo; a phase either continues, asks for a
//! clean stop (dry run, `--parse-only`, nothing to do) or fails with an [`Error`] that
//! says what went wrong. Phases orchestrate; the domain modules below (`edges`, `copy`,
//! `manifest`) decide and the registry backends do the I/O. Nothing here knows about
//! clap, stdout or exit codes: the CLI builds [`Options`], receives the plan through a
//! [`PlanSink`], and maps an [`Error`] to an exit code.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tracing::info;

use crate::audit::AuditLog;
use crate::edges::shard::Shard;
use crate::manifest::{DiffFilter, ManifestSource};
use crate::policy::Actor;
use crate::registry::ClientOptions;
use crate::trust::TrustOptions;

mod attest;
mod authorize;
mod decide;
mod error;
mod evidence;
mod inventory;
mod plan;
mod promote;
mod provenance;
mod readback;
mod record;
mod report;
mod rollback;
pub mod rollout;
mod setup;
mod sign;
mod state;
mod trust_jobs;
mod validate;
mod waves;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod trust_tests;

pub use decide::Decision;
pub use error::Error;
pub use plan::{Counts, Plan, PlanSink, SinkError};
pub use readback::Problem as ReadbackProblem;
pub use report::{RollbackReport, RolloutReport, RunReport, WaveReport};
pub use rollout::{RolloutOptions, Wave, WaveError};
pub use state::{AttestReport, Attested, ProvenanceRecord, SignReport, Signed, Subject};

use state::RunState;

/// Everything the promotion pipeline needs, independent of the CLI.
#[derive(Debug, Clone)]
pub struct Options {
    pub manifests: ManifestSource,
    pub diff: Option<DiffFilter>,
    /// Without it the run is a dry run that stops after Validate.
    pub confirm: bool,
    /// Stop after Plan.
    pub parse_only: bool,
    /// Exit 1 when any source digest is `_LOST_` (Go only logs them).
    pub fail_on_lost: bool,
    /// Sign (and attest) what is promoted; Go's default.
    pub sign: bool,
    pub trust: TrustOptions,
    pub registry: ClientOptions,
    /// Canary waves, read-back and rollback; the default writes every destination at once.
    pub rollout: RolloutOptions,
    /// Promote only this shard of the edges (`edges::shard`), after the whole plan was
    /// checked.
    pub shard: Option<Shard>,
    /// A policy file deciding who may promote what (`None`: whoever can push may).
    pub policy: Option<PathBuf>,
    /// Who this run acts for, as the policy and the audit log see it.
    pub actor: Actor,
    /// Where decisions and writes are recorded, when they are.
    pub audit: Option<Arc<AuditLog>>,
}

/// How a phase ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    /// A clean early stop (exit 0), with the reason logged.
    Stop(&'static str),
}

/// The phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Setup,
    Plan,
    Provenance,
    Validate,
    Promote,
    Sign,
    Attest,
}

const PHASES: [Phase; 7] = [
    Phase::Setup,
    Phase::Plan,
    Phase::Provenance,
    Phase::Validate,
    Phase::Promote,
    Phase::Sign,
    Phase::Attest,
];

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::Plan => "plan",
            Phase::Provenance => "provenance",
            Phase::Validate => "validate",
            Phase::Promote => "promote",
            Phase::Sign => "sign",
            Phase::Attest => "attest",
        }
    }

    async fn run(self, state: &mut RunState) -> Result<Flow, Error> {
        match self {
            Phase::Setup => setup::run(state).await,
            Phase::Plan => plan::run(state).await,
            Phase::Provenance => provenance::run(state).await,
            Phase::Validate => validate::run(state).await,
            Phase::Promote => promote::run(state).await,
            Phase::Sign => sign::run(state).await,
            Phase::Attest => attest::run(state).await,
        }
    }
}

/// A finished run: what it did (reported also after a failure, so a refused plan still
/// says what it read) and how it ended.
#[derive(Debug)]
pub struct Outcome {
    pub report: RunReport,
    pub result: Result<(), Error>,
}

/// Runs the promotion pipeline; the plan goes to `sink` as soon as it is decided.
pub async fn run(options: &Options, sink: Box<dyn PlanSink>) -> Outcome {
    let mut state = RunState::new(options.clone(), sink);
    let started = Instant::now();
    let mut result = run_phases(&mut state, &PHASES).await;
    // A run that ended before reading its manifests still says who started it (and
    // the phase records that waited for that are written).
    if let Err(e) = record::run_start(&mut state, Vec::new())
        && result.is_ok()
    {
        result = Err(e);
    }
    let report = RunReport::of(&state, started.elapsed(), result.as_ref().err());
    Outcome { report, result }
}

/// Runs `phases` in order over `state`. Split from [`run`] so tests can start from an
/// injected state (in-memory registries) and skip Setup.
async fn run_phases(state: &mut RunState, phases: &[Phase]) -> Result<(), Error> {
    let total = PHASES.len();
    info!("pipeline starting with {total} phases");
    for &phase in phases {
        if state.cancel.is_cancelled() {
            return Err(Error::Interrupted);
        }
        let index = PHASES.iter().position(|p| *p == phase).unwrap_or(0) + 1;
        let name = phase.name();
        info!("phase {index}/{total} {name} …");
        record::phase(state, name, "start", None)?;
        let start = Instant::now();
        let requests_before = state.requests();
        let outcome = phase.run(state).await;
        let took = start.elapsed();
        let requests = state.requests().since(requests_before);
        state.phases.push(state::PhaseTiming { name, took, requests });
        match outcome {
            Ok(flow) => {
                info!("phase {index}/{total} {name} … done in {took:.2?}");
                if let Flow::Stop(reason) = flow {
                    info!("phase {name} requested pipeline stop: {reason}");
                    record::phase(state, name, "stop", Some(took))?;
                    return Ok(());
                }
                record::phase(state, name, "done", Some(took))?;
            }
            Err(err) => {
                info!("phase {index}/{total} {name} … failed after {took:.2?}");
                // The phase's own error says more than a failure to record it.
                let _ = record::phase(state, name, "failed", Some(took));
                return Err(err);
            }
        }
    }
    Ok(())
}
