//! `kpromo manifest validate`: the offline check for CI on manifest PRs, a use case
//! beside the promotion pipeline and snapshots.
//!
//! Loads everything it can, applies every rule, then expands the manifests into
//! promotion edges to find cross-manifest overlaps. Nothing here touches the network.
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::edges::EdgeSet;
use crate::edges::report::{overlap_problems, redundant_notes};
use crate::manifest::load::{self, Loaded};
use crate::manifest::{ManifestSource, Position, Problem};

/// What `kpromo manifest validate` prints: every problem, then the summary line
/// `N manifests, N images, N digests, N tags, N edges`.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub problems: Vec<Problem>,
    /// Findings that do not fail the check: skipped directories, ignored files and
    /// redundant promotions (the same digest asked for twice), printed as `note:`.
    pub notes: Vec<Problem>,
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
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
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
    let source = if path.is_dir() {
        ManifestSource::ThinDir(path.to_path_buf())
    } else {
        ManifestSource::Plain(path.to_path_buf())
    };
    report(load::collect(&source, None))
}

/// Counts, cross-checks and reports what was loaded.
pub fn report(loaded: Loaded) -> CheckReport {
    let Loaded {
        manifests,
        mut problems,
        warnings,
    } = loaded;
    let edges = EdgeSet::from_manifests(&manifests);
    // Names the edge set refused are validation problems already; any it refused at
    // another position would otherwise be a promotion the check let through.
    let reported: BTreeSet<(PathBuf, Option<Position>)> = problems.iter().map(|p| (p.file.clone(), p.pos)).collect();
    let unreported: Vec<Problem> = edges
        .refused()
        .iter()
        .filter(|p| !reported.contains(&(p.file.clone(), p.pos)))
        .cloned()
        .collect();
    problems.extend(unreported);
    problems.extend(overlap_problems(&edges, &manifests));
    let mut notes = warnings;
    notes.extend(redundant_notes(&edges));

    let all_images = || manifests.iter().flat_map(|m| &m.images);
    CheckReport {
        manifests: manifests.len(),
        images: all_images().count(),
        digests: all_images().map(|i| i.dmap.len()).sum(),
        tags: all_images().flat_map(|i| &i.dmap).map(|e| e.tags.len()).sum(),
        edges: edges.len(),
        problems,
        notes,
    }
}
