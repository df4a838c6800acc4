//! The promotion pipeline: Setup, Plan, Provenance, Validate, Promote, Sign, Attest.
//!
//! Each phase is its own module over one shared, typed plan state. Nothing here knows
//! about clap: the CLI builds [`Options`] and maps returned errors to exit codes.
use std::path::PathBuf;

/// Where the manifests come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestSource {
    /// `--manifest FILE`: one plain manifest.
    Plain(PathBuf),
    /// `--thin-manifest-dir DIR`.
    ThinDir(PathBuf),
}

/// Restricts promotion to digests touched in git (anchor §2.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffFilter {
    /// `--use-prow-manifest-diff`: base from `JOB_TYPE` / `PULL_BASE_SHA`.
    Prow {
        job_type: Option<String>,
        pull_base_sha: Option<String>,
    },
    /// `--manifest-diff-since SINCE` (git date syntax, e.g. "7 days").
    Since(String),
}

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
    pub registry: RegistryOptions,
}

/// Transport settings for every registry the run touches.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryOptions {
    /// Requests per second allowed per registry host.
    pub rate_limit: u32,
    /// Requests that may be sent at once before the rate applies.
    pub burst: u32,
    /// Maximum requests in flight per registry host.
    pub max_concurrency: usize,
    /// Extra PEM CA bundle trusted for TLS.
    pub ca_file: Option<PathBuf>,
    /// Hosts reached over plain HTTP (loopback hosts always are).
    pub insecure_registries: Vec<String>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            rate_limit: 50,
            burst: 16,
            max_concurrency: 32,
            ca_file: None,
            insecure_registries: Vec::new(),
        }
    }
}
