//! The real registry.k8s.io manifest tree (testdata/registry.k8s.io, Apache-2.0, see its
//! SOURCE.md) through `kpromo cip --manifest-based-snapshot-of`: one run over every
//! project must list exactly what the images.yaml files promise the us-central1 mirror,
//! in Go's format and order.
//!
//! The expectation is computed here from the YAML files with plain serde structs, not
//! with kpromo's manifest model or edge code.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde::Deserialize;

const TREE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/registry.k8s.io");
const MIRROR: &str = "us-central1-docker.pkg.dev/k8s-artifacts-prod/images";

/// Upstream quirk (SOURCE.md): one digest with 63 hex digits, which the loader rightly
/// refuses, so the project is left out of the copied tree.
const QUIRKY: &[&str] = &["k8s-staging-ingress-nginx"];

#[derive(Deserialize)]
struct Registry {
    name: String,
    #[serde(default)]
    src: bool,
}

#[derive(Deserialize)]
struct PromoterManifest {
    registries: Vec<Registry>,
}

#[derive(Deserialize)]
struct ImageEntry {
    name: String,
    dmap: BTreeMap<String, Vec<String>>,
}

type Inventory = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn add(inventory: &mut Inventory, name: String, dmap: BTreeMap<String, Vec<String>>) {
    let image = inventory.entry(name).or_default();
    for (digest, tags) in dmap {
        image.entry(digest).or_default().extend(tags);
    }
}

/// Copies every consistent project (a promoter manifest with its images.yaml) into
/// `dest` and returns what MIRROR should hold according to them.
fn copy_tree_and_expect(dest: &Path) -> (usize, Inventory) {
    let mut expected = Inventory::new();
    let mut projects = 0;
    let manifests = Path::new(TREE).join("manifests");
    for entry in std::fs::read_dir(&manifests).expect("read manifests/") {
        let project = entry.expect("dir entry").file_name().to_string_lossy().into_owned();
        let manifest = manifests.join(&project).join("promoter-manifest.yaml");
        let images = Path::new(TREE).join("images").join(&project).join("images.yaml");
        if !manifest.is_file() || !images.is_file() || QUIRKY.contains(&project.as_str()) {
            continue;
        }
        projects += 1;
        for (from, to) in [
            (
                &manifest,
                dest.join("manifests").join(&project).join("promoter-manifest.yaml"),
            ),
            (&images, dest.join("images").join(&project).join("images.yaml")),
        ] {
            std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
            std::fs::copy(from, &to).expect("copy fixture");
        }
        let promoter: PromoterManifest = serde_saphyr::from_str(&read(&manifest)).expect("parse promoter manifest");
        let listed: Vec<ImageEntry> = serde_saphyr::from_str(&read(&images)).expect("parse images.yaml");
        let mut prefixes = BTreeSet::new();
        for registry in promoter.registries.iter().filter(|r| !r.src) {
            if registry.name == MIRROR {
                prefixes.insert(String::new());
            } else if let Some(sub) = registry.name.strip_prefix(&format!("{MIRROR}/")) {
                prefixes.insert(format!("{sub}/"));
            }
        }
        for prefix in prefixes {
            for image in &listed {
                add(&mut expected, format!("{prefix}{}", image.name), image.dmap.clone());
            }
        }
    }
    (projects, expected)
}

#[test]
fn whole_tree_snapshot_of_one_mirror_matches_the_images_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (projects, expected) = copy_tree_and_expect(dir.path());
    assert!(
        projects > 80,
        "the real tree should have most of its ~90 projects, got {projects}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_kpromo"))
        .args(["--log-level", "error", "cip", "--thin-manifest-dir"])
        .arg(dir.path())
        .args(["--manifest-based-snapshot-of", MIRROR])
        .output()
        .expect("run kpromo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let text = String::from_utf8(out.stdout).expect("UTF-8 snapshot");

    // Content: exactly what the images files promise this mirror.
    let printed: Vec<ImageEntry> = serde_saphyr::from_str(&text).expect("the snapshot is images.yaml YAML");
    let mut actual = Inventory::new();
    for image in printed {
        add(&mut actual, image.name, image.dmap);
    }
    assert_eq!(actual.len(), expected.len(), "image count");
    assert!(actual == expected, "snapshot content differs from the images files");

    // Form: Go's ToYAML line shapes, sorted names, digests and tags, Println's blank line.
    assert!(text.ends_with("]\n\n"), "ends with the last entry and a blank line");
    let mut names = Vec::new();
    let mut digests: Vec<&str> = Vec::new();
    for line in text.trim_end_matches('\n').lines() {
        if let Some(name) = line.strip_prefix("- name: ") {
            assert!(
                digests.windows(2).all(|w| w[0] < w[1]),
                "digests sorted under {names:?}"
            );
            digests.clear();
            names.push(name);
        } else if line == "  dmap:" {
        } else {
            let (digest, tags) = line
                .strip_prefix("    \"")
                .and_then(|l| l.split_once("\": "))
                .unwrap_or_else(|| panic!("unexpected line {line:?}"));
            assert!(digest.len() == 71 && digest.starts_with("sha256:"), "{line}");
            digests.push(digest);
            let inner = tags
                .strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .unwrap_or_else(|| panic!("{line}"));
            if !inner.is_empty() {
                let tags: Vec<&str> = inner.split(", ").collect();
                assert!(
                    tags.iter()
                        .all(|t| t.len() > 2 && t.starts_with('"') && t.ends_with('"')),
                    "{line}"
                );
                assert!(tags.windows(2).all(|w| w[0] < w[1]), "tags sorted: {line}");
            }
        }
    }
    assert!(names.windows(2).all(|w| w[0] < w[1]), "image names sorted");
    assert_eq!(names.len(), expected.len());
}
