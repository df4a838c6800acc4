//! Promotion manifests: schema, strict loading (plain files and thin-manifest trees),
//! validation and diff-scoped filtering.
//!
//! Loading never touches the network; everything here is usable from
//! `kpromo manifest validate` in a CI check.
pub mod diff;
pub mod load;
pub mod problem;
mod raw;
pub mod schema;
pub mod thin;
pub mod validate;
pub mod yaml;

use std::path::PathBuf;

pub use problem::Problem;
pub use schema::{DigestEntry, Image, Manifest, Position, RegistryContext};

/// Where the manifests come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestSource {
    /// `--manifest FILE`: one plain manifest.
    Plain(PathBuf),
    /// `--thin-manifest-dir DIR`.
    ThinDir(PathBuf),
}

/// Restricts promotion to digests touched in git (Go kpromo's `--use-prow-manifest-diff` and `--manifest-diff-since`).
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
