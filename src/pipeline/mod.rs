//! The promotion pipeline: Setup, Plan, Provenance, Validate, Promote, Sign, Attest.
//!
//! Each phase is its own module over one shared, typed plan state ([`state::PlanState`]).
//! Phases run strictly in order, as in Go kpromo; a phase either continues, asks for a
//! clean stop (dry run, `--parse-only`, nothing to do) or fails. Nothing here knows
//! about clap: the CLI builds [`Options`] and maps returned errors to exit codes.
use std::path::PathBuf;
use std::time::Instant;

use tracing::info;

use crate::error::KpromoError;
use crate::manifest::{DiffFilter, ManifestSource};
use crate::registry::ClientOptions;

pub mod attest;
pub mod decide;
mod fanout;
mod graph;
pub mod plan;
mod progress;
pub mod promote;
pub mod provenance;
pub mod setup;
pub mod sign;
pub mod state;
pub mod summary;
pub mod validate;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use state::PlanState;

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
    /// Write the plan as JSON here.
    pub plan_out: Option<PathBuf>,
    /// Write the run summary as JSON here.
    pub summary_json: Option<PathBuf>,
    pub sign: bool,
    pub max_signature_ops: usize,
    pub registry: ClientOptions,
}

/// How a phase ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
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

    async fn run(self, state: &mut PlanState) -> Result<Flow, KpromoError> {
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

/// Runs the promotion pipeline and writes the summary (also after a failure, so a
/// refused plan still reports what it read).
pub async fn run(options: &Options) -> Result<(), KpromoError> {
    let mut state = PlanState::new(options.clone());
    let started = Instant::now();
    let result = run_phases(&mut state, &PHASES).await;
    summary::finish(&state, started.elapsed(), result.as_ref().err())?;
    result
}

/// Runs `phases` in order over `state`. Split from [`run`] so tests can start from an
/// injected state (fake registries) and skip Setup.
async fn run_phases(state: &mut PlanState, phases: &[Phase]) -> Result<(), KpromoError> {
    let total = PHASES.len();
    info!("pipeline starting with {total} phases");
    for &phase in phases {
        if state.cancel.is_cancelled() {
            return Err(interrupted());
        }
        let index = PHASES.iter().position(|p| *p == phase).unwrap_or(0) + 1;
        let name = phase.name();
        info!("phase {index}/{total} {name} …");
        let start = Instant::now();
        let outcome = phase.run(state).await;
        let took = start.elapsed();
        state.phases.push(state::PhaseTiming { name, took });
        match outcome {
            Ok(flow) => {
                info!("phase {index}/{total} {name} … done in {took:.2?}");
                if let Flow::Stop(reason) = flow {
                    info!("phase {name} requested pipeline stop: {reason}");
                    return Ok(());
                }
            }
            Err(err) => {
                info!("phase {index}/{total} {name} … failed after {took:.2?}");
                return Err(err);
            }
        }
    }
    Ok(())
}

/// The error for a run stopped by Ctrl-C between units of work.
pub(crate) fn interrupted() -> KpromoError {
    KpromoError::promotion(anyhow::anyhow!(
        "interrupted: stopped between units of work; nothing is half-written, rerun to finish"
    ))
}
