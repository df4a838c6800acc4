//! `kpromo manifest validate`: the offline check for CI on manifest PRs.
//!
//! Loads everything it can, applies every rule, then expands the manifests into
//! promotion edges to find cross-manifest overlaps. Nothing here touches the network.
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::load::{self, Loaded};
use super::{Manifest, ManifestSource, Position, Problem};
use crate::edges::{EdgeSet, Overlap};

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

/// A `dmap` entry behind an overlapping edge: its file, position and source reference.
type WantedBy = (PathBuf, Option<Position>, String);

/// One problem per conflicting set of `dmap` entries, however many destination
/// registries they collide in (a tag clash between two projects with 22 regions is
/// one mistake, not 22). It points at the first entry and names all of them.
fn overlap_problems(edges: &EdgeSet, manifests: &[Manifest]) -> Vec<Problem> {
    let mut grouped: BTreeMap<Vec<WantedBy>, Vec<&Overlap>> = BTreeMap::new();
    for overlap in edges.overlaps() {
        let mut entries: Vec<WantedBy> = overlap
            .origins
            .iter()
            .zip(&overlap.sources)
            .map(|((edge, index), (src, _))| {
                let manifest = &manifests[*index];
                let digest = edge.digest.to_string();
                let pos = manifest
                    .images
                    .iter()
                    .filter(|i| i.name == edges.name(edge.image))
                    .flat_map(|i| &i.dmap)
                    .find(|e| e.digest == digest)
                    .map(|e| e.pos);
                (manifest.images_path.to_path_buf(), pos, src.clone())
            })
            .collect();
        entries.dedup();
        grouped.entry(entries).or_default().push(overlap);
    }
    grouped
        .into_iter()
        .map(|(entries, overlaps)| {
            let mut message = format!("overlapping edges detected: {}", overlaps[0].destination);
            if overlaps.len() > 1 {
                message.push_str(&format!(" (and {} more destinations)", overlaps.len() - 1));
            }
            message.push_str(" is wanted with different digests by");
            for (i, (file, pos, src)) in entries.iter().enumerate() {
                let sep = if i == 0 { " " } else { ", " };
                let at = match pos {
                    Some(p) => format!("{}:{}:{}", file.display(), p.line, p.column),
                    None => file.display().to_string(),
                };
                message.push_str(&format!("{sep}{src} ({at})"));
            }
            let (file, pos, _) = &entries[0];
            Problem {
                file: file.clone(),
                pos: *pos,
                message,
            }
        })
        .collect()
}

/// One note per digest asked for by the same set of manifests.
fn redundant_notes(edges: &EdgeSet) -> Vec<Problem> {
    let mut grouped: BTreeMap<(Vec<PathBuf>, String), (String, usize)> = BTreeMap::new();
    for r in edges.redundant() {
        let key = (
            r.manifests.iter().map(|p| p.to_path_buf()).collect(),
            r.digest.to_string(),
        );
        grouped.entry(key).or_insert_with(|| (r.destination.clone(), 0)).1 += 1;
    }
    grouped
        .into_iter()
        .map(|((manifests, digest), (first, count))| {
            let more = if count > 1 {
                format!(" (and {} more destinations)", count - 1)
            } else {
                String::new()
            };
            let others: Vec<String> = manifests[1..].iter().map(|p| p.display().to_string()).collect();
            Problem::file(
                &manifests[0],
                format!(
                    "redundant promotion: {digest} to {first}{more} is also asked for by {}; promoted once",
                    others.join(", ")
                ),
            )
        })
        .collect()
}
