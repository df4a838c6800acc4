//! `kpromo manifest validate`: the offline check for CI on manifest PRs.
//! CONTRACT PLACEHOLDER: the manifest helper replaces the body; keep the signatures.
use std::fmt;
use std::path::Path;

use super::Problem;

/// What `kpromo manifest validate` prints: every problem, then the summary line
/// `N manifests, N images, N digests, N tags, N edges`.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub problems: Vec<Problem>,
    pub manifests: usize,
    pub images: usize,
    pub digests: usize,
    pub tags: usize,
    pub edges: usize,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.problems {
            writeln!(f, "{p}")?;
        }
        write!(
            f,
            "{} manifests, {} images, {} digests, {} tags, {} edges",
            self.manifests, self.images, self.digests, self.tags, self.edges
        )
    }
}

/// Checks a thin-manifest directory or a plain manifest file, offline.
pub fn check_path(path: &Path) -> CheckReport {
    let _ = path;
    CheckReport::default()
}
