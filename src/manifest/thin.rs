//! The thin-manifest directory layout, as Go kpromo's `ParseThinManifestsFromDir` reads
//! it: `<root>/manifests/<project>/promoter-manifest.yaml` with its images in
//! `<root>/images/<project>/images.yaml`.
//!
//! Differences from Go: every structure problem is collected (Go stops at the first),
//! depth is counted on path components so a root given with a trailing slash works,
//! and symlinked directories are not followed (no loops).
use std::fs;
use std::path::{Path, PathBuf};

use super::Problem;
use super::yaml::io_message;

pub const MANIFEST_FILE: &str = "promoter-manifest.yaml";
pub const IMAGES_FILE: &str = "images.yaml";

/// Deeper than this under `manifests/` is reported instead of walked (manifests live
/// at depth 2; this only bounds the walk on pathological trees).
const MAX_WALK_DEPTH: usize = 32;

/// One project whose two files both exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub manifest: PathBuf,
    pub images: PathBuf,
}

/// What the layout scan found: projects to load (sorted by name), fatal problems and
/// warnings (skipped directories, stray files).
#[derive(Debug, Default)]
pub struct Layout {
    pub projects: Vec<Project>,
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

/// `root` with trailing separators removed, so that joined paths print cleanly.
pub fn normalize_root(root: &Path) -> PathBuf {
    let normalized: PathBuf = root.components().collect();
    if normalized.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        normalized
    }
}

pub fn scan(root: &Path) -> Layout {
    let mut layout = Layout::default();
    let images_dir = root.join("images");
    let manifests_dir = root.join("manifests");
    for dir in [&images_dir, &manifests_dir] {
        match fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => layout
                .problems
                .push(Problem::file(root, format!("\"{}\" is not a directory", dir.display()))),
            Err(e) => layout.problems.push(Problem::file(
                root,
                format!("stat {}: {}", dir.display(), io_message(&e)),
            )),
        }
    }
    if !layout.problems.is_empty() {
        return layout;
    }
    tracing::debug!("*looking at \"{}\"", root.display());

    for project_dir in sorted_dirs(&manifests_dir, &mut layout.problems) {
        let manifest = project_dir.join(MANIFEST_FILE);
        if !fs::metadata(&manifest).is_ok_and(|m| m.is_file()) {
            layout.warnings.push(Problem::file(
                &project_dir,
                format!("no {MANIFEST_FILE} in this directory, skipping it"),
            ));
            continue;
        }
        let Some(name) = project_dir.file_name() else {
            continue;
        };
        let images = images_dir.join(name).join(IMAGES_FILE);
        match fs::metadata(&images) {
            Ok(meta) if meta.is_file() => layout.projects.push(Project { manifest, images }),
            Ok(_) => layout.problems.push(Problem::file(
                &manifest,
                format!("corresponding file \"{}\" is not a regular file", images.display()),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => layout.problems.push(Problem::file(
                &manifest,
                format!("corresponding file \"{}\" does not exist", images.display()),
            )),
            Err(e) => layout.problems.push(Problem::file(
                &manifest,
                format!("stat {}: {}", images.display(), io_message(&e)),
            )),
        }
    }

    misplaced_manifests(&manifests_dir, 0, &mut layout.problems);

    for project_dir in sorted_dirs(&images_dir, &mut layout.problems) {
        let stray = project_dir.join(MANIFEST_FILE);
        if stray.is_file() {
            layout.warnings.push(Problem::file(
                &stray,
                format!("ignored: promoter manifests belong in {}", manifests_dir.display()),
            ));
        }
        let images = project_dir.join(IMAGES_FILE);
        let name = project_dir.file_name().unwrap_or_default();
        if images.is_file() && !manifests_dir.join(name).join(MANIFEST_FILE).is_file() {
            layout.warnings.push(Problem::file(
                &images,
                format!(
                    "ignored: no promoter manifest {}",
                    manifests_dir.join(name).join(MANIFEST_FILE).display()
                ),
            ));
        }
    }
    layout
}

/// Reports every `promoter-manifest.yaml` that is not exactly at
/// `manifests/<project>/promoter-manifest.yaml`.
fn misplaced_manifests(dir: &Path, depth: usize, problems: &mut Vec<Problem>) {
    if depth > MAX_WALK_DEPTH {
        problems.push(Problem::file(
            dir,
            format!("directory nesting deeper than {MAX_WALK_DEPTH} levels under manifests/, not searched"),
        ));
        return;
    }
    let entries = match read_dir_sorted(dir) {
        Ok(entries) => entries,
        Err(problem) => {
            problems.push(problem);
            return;
        }
    };
    for (path, is_dir) in entries {
        if is_dir {
            misplaced_manifests(&path, depth + 1, problems);
        } else if depth != 1 && path.file_name().is_some_and(|n| n == MANIFEST_FILE) {
            problems.push(Problem::file(
                &path,
                format!("unexpected manifest path \"{}\"", path.display()),
            ));
        }
    }
}

fn sorted_dirs(dir: &Path, problems: &mut Vec<Problem>) -> Vec<PathBuf> {
    match read_dir_sorted(dir) {
        Ok(entries) => entries.into_iter().filter(|(_, d)| *d).map(|(p, _)| p).collect(),
        Err(problem) => {
            problems.push(problem);
            Vec::new()
        }
    }
}

/// Entries of `dir` sorted by name, each with "is a real directory" (symlinks are not
/// followed, as in Go's walk).
fn read_dir_sorted(dir: &Path) -> Result<Vec<(PathBuf, bool)>, Problem> {
    let to_problem = |e: std::io::Error| Problem::file(dir, format!("reading directory: {}", io_message(&e)));
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(to_problem)? {
        let entry = entry.map_err(to_problem)?;
        let is_dir = entry.file_type().map_err(to_problem)?.is_dir();
        entries.push((entry.path(), is_dir));
    }
    entries.sort();
    Ok(entries)
}
