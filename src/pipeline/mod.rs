//! The promotion pipeline: Setup, Plan, Provenance, Validate, Promote, Sign, Attest.
//!
//! Each phase is its own module over one shared, typed plan state. Nothing here knows
//! about clap: the CLI builds [`Options`] and maps returned errors to exit codes.
use std::path::PathBuf;

use crate::error::KpromoError;
use crate::manifest::{DiffFilter, ManifestSource};
use crate::registry::ClientOptions;

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

/// Runs the promotion pipeline.
/// CONTRACT PLACEHOLDER: the pipeline helper replaces the body; keep the signature.
pub async fn run(options: &Options) -> Result<(), KpromoError> {
    let _ = options;
    Err(KpromoError::usage(anyhow::anyhow!("promotion is not implemented yet")))
}
