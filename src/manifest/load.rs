//! Strict loading of plain manifests and thin-manifest trees.
//!
//! Every file is tried and every problem collected, so one run of
//! `kpromo manifest validate` shows everything wrong with a tree.
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use super::raw::{self, ImagesFile, PlainManifest, RawRegistry, ThinManifest};
use super::{DiffFilter, Image, Manifest, ManifestSource, Position, Problem, diff, thin, validate, yaml};
use serde_saphyr::Spanned;

/// Every problem that stopped loading (all files are tried; nothing stops at the first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct LoadError {
    pub problems: Vec<Problem>,
}

/// Loads the manifests named by `source`, keeping only digests in the git diff when
/// `diff` is set (an empty diff yields no manifests, not an error).
pub fn load(source: &ManifestSource, diff: Option<&DiffFilter>) -> Result<Vec<Manifest>, LoadError> {
    let loaded = collect(source, diff);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    if loaded.problems.is_empty() {
        Ok(loaded.manifests)
    } else {
        Err(LoadError {
            problems: loaded.problems,
        })
    }
}

/// Loads one plain manifest file.
pub fn load_plain(path: &Path) -> Result<Manifest, LoadError> {
    let mut loaded = Loaded::default();
    plain(path, None, &mut loaded);
    match (loaded.problems.is_empty(), loaded.manifests.pop()) {
        (true, Some(manifest)) => Ok(manifest),
        _ => Err(LoadError {
            problems: loaded.problems,
        }),
    }
}

/// Everything one load found: the manifests that parsed (even if they broke a
/// validation rule, so that a check can still count and cross-check them), the
/// problems, and warnings that do not fail a run.
#[derive(Debug, Default)]
pub struct Loaded {
    pub manifests: Vec<Manifest>,
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

/// Loads without failing: see [`Loaded`]. Problems come sorted by file and position.
pub fn collect(source: &ManifestSource, diff: Option<&DiffFilter>) -> Loaded {
    let mut loaded = Loaded::default();
    let allow = match diff {
        None => None,
        Some(filter) => match diff::digests(&repo_dir(source), filter) {
            Ok(digests) if digests.is_empty() => {
                tracing::info!("No digests found in diff, nothing to promote");
                return loaded;
            }
            Ok(digests) => Some(digests),
            Err(problem) => {
                loaded.problems.push(problem);
                return loaded;
            }
        },
    };
    match source {
        ManifestSource::Plain(path) => plain(path, allow.as_ref(), &mut loaded),
        ManifestSource::ThinDir(root) => thin_tree(root, allow.as_ref(), &mut loaded),
    }
    loaded.problems.sort();
    loaded.warnings.sort();
    loaded
}

/// The directory git runs in for a diff: the tree root, or the plain file's directory.
fn repo_dir(source: &ManifestSource) -> std::path::PathBuf {
    match source {
        ManifestSource::ThinDir(root) => thin::normalize_root(root),
        ManifestSource::Plain(path) => match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => ".".into(),
        },
    }
}

fn plain(path: &Path, allow: Option<&HashSet<String>>, loaded: &mut Loaded) {
    match yaml::read_text(path) {
        Ok(text) => plain_text(path, &text, allow, loaded),
        Err(problem) => loaded.problems.push(problem),
    }
}

/// Loads a plain manifest from its text, as read from `path`: what [`load_plain`] does
/// once the file is read (the fuzz target's entry).
pub fn plain_from_text(path: &Path, text: &str) -> Loaded {
    let mut loaded = Loaded::default();
    plain_text(path, text, None, &mut loaded);
    loaded.problems.sort();
    loaded
}

/// Loads one thin-tree project from the texts of its `promoter-manifest.yaml` and
/// `images.yaml` (the fuzz target's entry).
pub fn thin_from_text(manifest: (&Path, &str), images: (&Path, &str)) -> Loaded {
    let mut loaded = Loaded::default();
    thin_project(manifest, images, None, &mut loaded);
    loaded.problems.sort();
    loaded
}

fn plain_text(path: &Path, text: &str, allow: Option<&HashSet<String>>, loaded: &mut Loaded) {
    let manifest = match yaml::parse::<PlainManifest>(path, text) {
        Ok(manifest) => manifest.unwrap_or_default(),
        Err(problem) => {
            loaded.problems.push(problem);
            return;
        }
    };
    let path = Arc::new(path.to_path_buf());
    let images = raw::images(manifest.images.unwrap_or_default());
    assemble(path.clone(), path, manifest.registries, images, allow, loaded);
}

fn thin_tree(root: &Path, allow: Option<&HashSet<String>>, loaded: &mut Loaded) {
    let root = thin::normalize_root(root);
    let layout = thin::scan(&root);
    loaded.problems.extend(layout.problems);
    loaded.warnings.extend(layout.warnings);
    for project in layout.projects {
        match (yaml::read_text(&project.manifest), yaml::read_text(&project.images)) {
            (Ok(manifest), Ok(images)) => thin_project(
                (&project.manifest, &manifest),
                (&project.images, &images),
                allow,
                loaded,
            ),
            (manifest, images) => {
                loaded.problems.extend(manifest.err());
                loaded.problems.extend(images.err());
            }
        }
    }
    if loaded.manifests.is_empty() && loaded.problems.is_empty() {
        loaded.problems.push(Problem::file(
            &root,
            format!("no manifests found in dir: {}", root.display()),
        ));
    }
}

/// One project of a thin tree, from the texts of its two files.
fn thin_project(
    (manifest_path, manifest): (&Path, &str),
    (images_path, images): (&Path, &str),
    allow: Option<&HashSet<String>>,
    loaded: &mut Loaded,
) {
    let manifest = yaml::parse::<ThinManifest>(manifest_path, manifest);
    let images = yaml::parse::<ImagesFile>(images_path, images);
    match (manifest, images) {
        (Ok(manifest), Ok(images)) => {
            let images = raw::images(images.unwrap_or_default());
            let registries = manifest.unwrap_or_default().registries;
            assemble(
                Arc::new(manifest_path.to_path_buf()),
                Arc::new(images_path.to_path_buf()),
                registries,
                images,
                allow,
                loaded,
            );
        }
        (manifest, images) => {
            loaded.problems.extend(manifest.err());
            loaded.problems.extend(images.err());
        }
    }
}

/// Validates one parsed manifest, applies the digest allow-list and keeps it.
///
/// With an allow-list, only the entries that survive it are validated: a diff-scoped
/// run must not fail on an unrelated, untouched image elsewhere in the tree.
fn assemble(
    path: Arc<std::path::PathBuf>,
    images_path: Arc<std::path::PathBuf>,
    registries: Option<Spanned<Vec<Spanned<RawRegistry>>>>,
    mut images: Vec<Image>,
    allow: Option<&HashSet<String>>,
    loaded: &mut Loaded,
) {
    let (registries, at) = match registries {
        Some(list) => {
            let at = yaml::position(&list);
            (raw::registries(list.value), at)
        }
        None => (Vec::new(), Position { line: 1, column: 1 }),
    };
    loaded.problems.extend(validate::registries(&path, &registries, at));
    if let Some(allow) = allow {
        for image in &mut images {
            image.dmap.retain(|entry| allow.contains(&entry.digest));
        }
        images.retain(|image| !image.dmap.is_empty());
    }
    loaded
        .problems
        .extend(validate::images(&images_path, &images, &registries));
    loaded.manifests.push(Manifest {
        path,
        images_path,
        registries,
        images,
    });
}
