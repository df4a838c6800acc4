//! Diff-scoped loading (`--use-prow-manifest-diff`, `--manifest-diff-since`) against a
//! temporary git repository.
use std::fs;
use std::path::Path;
use std::process::Command;

use kpromo::manifest::load::load;
use kpromo::manifest::{DiffFilter, ManifestSource};

const REGISTRIES: &str = "registries:\n- name: gcr.io/stage\n  src: true\n- name: us.gcr.io/prod\n";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn write_images(root: &Path, entries: &[(char, &str)]) {
    let mut text = String::from("- name: foo\n  dmap:\n");
    for (c, tags) in entries {
        text.push_str(&format!("    \"{}\": {tags}\n", digest(*c)));
    }
    fs::write(root.join("images/a/images.yaml"), text).unwrap();
}

/// A repository whose manifest tree lives in `k8s/` (not the repo root, to check that
/// git runs from the top level), with one commit holding digests a and b.
fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("k8s");
    fs::create_dir_all(root.join("manifests/a")).unwrap();
    fs::create_dir_all(root.join("images/a")).unwrap();
    fs::write(root.join("manifests/a/promoter-manifest.yaml"), REGISTRIES).unwrap();
    write_images(&root, &[('a', "[\"1.0\"]"), ('b', "[\"1.1\"]")]);
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "."]);
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(["commit", "-q", "-m", "first"])
        .env("GIT_AUTHOR_DATE", "2020-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2020-01-01T00:00:00Z")
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(out.success());
    dir
}

fn digests_loaded(root: &Path, filter: &DiffFilter) -> Vec<String> {
    let manifests = load(&ManifestSource::ThinDir(root.to_path_buf()), Some(filter)).unwrap();
    manifests
        .iter()
        .flat_map(|m| &m.images)
        .flat_map(|i| &i.dmap)
        .map(|e| e.digest.clone())
        .collect()
}

fn prow(job: &str, base: Option<&str>) -> DiffFilter {
    DiffFilter::Prow {
        job_type: Some(job.to_string()),
        pull_base_sha: base.map(str::to_string),
    }
}

#[test]
fn presubmit_keeps_only_digests_changed_since_the_base() {
    let dir = repo();
    let root = dir.path().join("k8s");
    let base = git(dir.path(), &["rev-parse", "HEAD"]);
    // Working-tree change: c added, b's tag changed (its line counts as removed + added).
    write_images(&root, &[('a', "[\"1.0\"]"), ('b', "[\"1.2\"]"), ('c', "[]")]);
    let mut got = digests_loaded(&root, &prow("presubmit", Some(base.trim())));
    got.sort();
    assert_eq!(got, [digest('b'), digest('c')]);
    assert_eq!(digests_loaded(&root, &prow("batch", Some(base.trim()))).len(), 2);
}

#[test]
fn postsubmit_diffs_against_the_previous_commit() {
    let dir = repo();
    let root = dir.path().join("k8s");
    write_images(&root, &[('a', "[\"1.0\"]"), ('b', "[\"1.1\"]"), ('d', "[\"2.0\"]")]);
    git(dir.path(), &["commit", "-q", "-am", "add d"]);
    assert_eq!(digests_loaded(&root, &prow("postsubmit", None)), [digest('d')]);
}

#[test]
fn empty_diff_means_no_manifests_not_an_error() {
    let dir = repo();
    let root = dir.path().join("k8s");
    let head = git(dir.path(), &["rev-parse", "HEAD"]);
    let manifests = load(
        &ManifestSource::ThinDir(root),
        Some(&prow("presubmit", Some(head.trim()))),
    )
    .unwrap();
    assert!(manifests.is_empty());
}

#[test]
fn diff_scoped_run_ignores_broken_entries_outside_the_diff() {
    let dir = repo();
    let root = dir.path().join("k8s");
    // Commit an image with an invalid tag, then touch only digest e.
    write_images(&root, &[('a', "[\"-bad\"]"), ('b', "[\"1.1\"]")]);
    git(dir.path(), &["commit", "-q", "-am", "bad tag"]);
    let head = git(dir.path(), &["rev-parse", "HEAD"]);
    write_images(&root, &[('a', "[\"-bad\"]"), ('b', "[\"1.1\"]"), ('e', "[\"3.0\"]")]);
    assert_eq!(
        digests_loaded(&root, &prow("presubmit", Some(head.trim()))),
        [digest('e')]
    );
    // Without the filter the bad tag is an error.
    assert!(load(&ManifestSource::ThinDir(root), None).is_err());
}

#[test]
fn since_uses_the_parent_of_the_oldest_recent_commit() {
    let dir = repo();
    let root = dir.path().join("k8s");
    // Nothing since 2021: nothing to promote.
    let since_2021 = DiffFilter::Since("2021-01-01".into());
    assert!(
        load(&ManifestSource::ThinDir(root.clone()), Some(&since_2021))
            .unwrap()
            .is_empty()
    );

    // Two recent commits: the base is the parent of the older one, so both count,
    // and the 2020 commit's digests do not.
    write_images(&root, &[('a', "[\"1.0\"]"), ('b', "[\"1.1\"]"), ('f', "[\"4.0\"]")]);
    git(dir.path(), &["commit", "-q", "-am", "add f"]);
    write_images(
        &root,
        &[('a', "[\"1.0\"]"), ('b', "[\"1.1\"]"), ('f', "[\"4.0\"]"), ('9', "[]")],
    );
    git(dir.path(), &["commit", "-q", "-am", "add 9"]);
    let mut got = digests_loaded(&root, &since_2021);
    got.sort();
    assert_eq!(got, [digest('9'), digest('f')]);
}

#[test]
fn since_on_a_root_commit_diffs_against_the_commit_itself() {
    let dir = repo();
    let root = dir.path().join("k8s");
    // The only recent commit is the root: no parent, so the base is the commit and
    // only working-tree changes count.
    write_images(&root, &[('a', "[\"1.0\"]"), ('b', "[\"1.1\"]"), ('8', "[]")]);
    assert_eq!(
        digests_loaded(&root, &DiffFilter::Since("2019-01-01".into())),
        [digest('8')]
    );
}

#[test]
fn prow_errors_are_clear() {
    let dir = repo();
    let root = dir.path().join("k8s");
    let err = |filter: DiffFilter| {
        load(&ManifestSource::ThinDir(root.clone()), Some(&filter))
            .unwrap_err()
            .to_string()
    };
    let r = root.display();
    assert_eq!(err(prow("periodic", None)), format!("{r}: unknown job type: periodic"));
    assert_eq!(
        err(prow("presubmit", None)),
        format!("{r}: PULL_BASE_SHA must be set to use the prow manifest diff")
    );
    assert_eq!(
        err(DiffFilter::Prow {
            job_type: None,
            pull_base_sha: None
        }),
        format!("{r}: JOB_TYPE must be set to use the prow manifest diff")
    );
    let bad_base = err(prow("presubmit", Some("0000000000000000000000000000000000000000")));
    // Reported against the repository top level, where git ran.
    assert!(
        bad_base.starts_with(&format!("{}: git diff", dir.path().display())) && bad_base.contains("bad object"),
        "{bad_base}"
    );
}

#[test]
fn outside_a_git_repository_is_an_error_naming_git() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("manifests/a")).unwrap();
    fs::create_dir_all(root.join("images/a")).unwrap();
    let err = load(&ManifestSource::ThinDir(root.into()), Some(&prow("postsubmit", None)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("git rev-parse --show-toplevel"), "{err}");
}
