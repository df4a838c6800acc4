//! The real registry.k8s.io tree (`testdata/registry.k8s.io`, see its SOURCE.md).
//!
//! Expected counts are computed here independently of kpromo's model: the YAML is
//! walked as generic `serde_json::Value`s and the quirks are found by looking at the
//! files directly, so a bug in the loader cannot hide in its own expectations.
use std::collections::HashSet;
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use kpromo::check::check_path;
use kpromo::manifest::load::load;
use kpromo::manifest::{ManifestSource, Problem};
use serde_json::Value;

fn real_tree() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/registry.k8s.io")
}

fn projects(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root.join("manifests"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().join("promoter-manifest.yaml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn generic(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap();
    serde_saphyr::from_str::<Option<Value>>(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .unwrap_or(Value::Null)
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Digest strings of every dmap in a generic images.yaml.
fn dmap_keys(images: &Value) -> Vec<String> {
    images
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("dmap").and_then(Value::as_object))
        .flat_map(|d| d.keys().cloned())
        .collect()
}

fn is_sha256(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    manifests: usize,
    images: usize,
    digests: usize,
    tags: usize,
    edges: usize,
}

/// Counts over projects that have both files, from generic YAML values.
fn independent_counts(root: &Path) -> Counts {
    let mut counts = Counts::default();
    // Distinct (destination, image, tag or tagless, digest), hashed to keep the set
    // small: 64-bit collisions among ~600k edges are vanishingly unlikely.
    let mut edges: HashSet<u64> = HashSet::new();
    for project in projects(root) {
        let images_path = root.join("images").join(&project).join("images.yaml");
        if !images_path.is_file() {
            continue;
        }
        let manifest = generic(&root.join("manifests").join(&project).join("promoter-manifest.yaml"));
        let images = generic(&images_path);
        counts.manifests += 1;
        let registries = manifest["registries"].as_array().cloned().unwrap_or_default();
        let has_src = registries.iter().any(|r| r["src"] == Value::Bool(true));
        let dsts: Vec<String> = registries
            .iter()
            .filter(|r| r["src"] != Value::Bool(true))
            .map(|r| str_of(&r["name"]))
            .collect();
        for image in images.as_array().into_iter().flatten() {
            counts.images += 1;
            let name = str_of(&image["name"]);
            for (digest, tags) in image["dmap"].as_object().into_iter().flatten() {
                counts.digests += 1;
                let tags: Vec<String> = tags.as_array().into_iter().flatten().map(str_of).collect();
                counts.tags += tags.len();
                if !has_src || !is_sha256(digest) {
                    continue;
                }
                let tag_slots: Vec<Option<&str>> = if tags.is_empty() {
                    vec![None]
                } else {
                    tags.iter().map(|t| Some(t.as_str())).collect()
                };
                for dst in &dsts {
                    for tag in &tag_slots {
                        let mut h = DefaultHasher::new();
                        (dst, &name, tag, digest).hash(&mut h);
                        edges.insert(h.finish());
                    }
                }
            }
        }
    }
    counts.edges = edges.len();
    counts
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The consistent part: a copy without the projects that have no images.yaml or hold
/// a malformed digest (found here by looking at the files).
fn consistent_copy() -> (tempfile::TempDir, Vec<String>) {
    let root = real_tree();
    let tmp = tempfile::tempdir().unwrap();
    let mut dropped = Vec::new();
    for project in projects(&root) {
        let images = root.join("images").join(&project).join("images.yaml");
        if !images.is_file() || dmap_keys(&generic(&images)).iter().any(|d| !is_sha256(d)) {
            dropped.push(project);
            continue;
        }
        for kind in ["manifests", "images"] {
            copy_dir(&root.join(kind).join(&project), &tmp.path().join(kind).join(&project));
        }
    }
    (tmp, dropped)
}

#[test]
fn consistent_part_validates_cleanly_with_independently_computed_counts() {
    let (tmp, dropped) = consistent_copy();
    assert_eq!(
        dropped.len(),
        16,
        "15 projects without images.yaml and 1 with a bad digest: {dropped:?}"
    );
    let report = check_path(tmp.path());
    assert!(report.is_clean(), "{report}");
    let want = independent_counts(tmp.path());
    assert_eq!(
        report.to_string().lines().last().unwrap(),
        format!(
            "{} manifests, {} images, {} digests, {} tags, {} edges",
            want.manifests, want.images, want.digests, want.tags, want.edges
        )
    );
    assert!(want.edges > 500_000, "the real tree is large: {want:?}");

    // It also loads for promotion, with imagesPath keys and CRLF files accepted.
    let manifests = load(&ManifestSource::ThinDir(tmp.path().into()), None).unwrap();
    assert_eq!(manifests.len(), want.manifests);
    let with_images_path = projects(tmp.path())
        .iter()
        .filter(|p| {
            let text = fs::read_to_string(tmp.path().join("manifests").join(p).join("promoter-manifest.yaml")).unwrap();
            text.lines().any(|l| l.starts_with("imagesPath:"))
        })
        .count();
    assert!(with_images_path > 10, "{with_images_path}");
    let npd = manifests
        .iter()
        .find(|m| m.images_path.ends_with("k8s-staging-npd/images.yaml"))
        .expect("the CRLF file loads");
    assert!(fs::read(&*npd.images_path).unwrap().windows(2).any(|w| w == b"\r\n"));
    assert!(npd.images.iter().all(|i| !i.name.contains('\r')));
    assert!(
        npd.images
            .iter()
            .flat_map(|i| &i.dmap)
            .flat_map(|e| &e.tags)
            .all(|t| !t.contains('\r'))
    );
}

#[test]
fn whole_tree_reports_exactly_the_known_quirks_with_file_and_line() {
    let root = real_tree();
    let report = check_path(&root);

    let mut expected: Vec<String> = Vec::new();
    for project in projects(&root) {
        let images = root.join("images").join(&project).join("images.yaml");
        if !images.is_file() {
            expected.push(format!(
                "{}: corresponding file \"{}\" does not exist",
                root.join("manifests")
                    .join(&project)
                    .join("promoter-manifest.yaml")
                    .display(),
                images.display()
            ));
            continue;
        }
        // Malformed digests, located by a plain text search for their line and column.
        for bad in dmap_keys(&generic(&images)).into_iter().filter(|d| !is_sha256(d)) {
            let text = fs::read_to_string(&images).unwrap();
            let (line, content) = text
                .lines()
                .enumerate()
                .find(|(_, l)| l.contains(&format!("\"{bad}\"")))
                .unwrap();
            let column = content.find('"').unwrap() + 1;
            expected.push(format!(
                "{}:{}:{column}: invalid digest: {bad}",
                images.display(),
                line + 1
            ));
        }
    }
    expected.sort();
    let got: Vec<String> = report.problems.iter().map(Problem::to_string).collect();
    assert_eq!(got, expected);
    assert_eq!(got.len(), 16);
    assert!(
        got.iter()
            .any(|p| p.contains("k8s-staging-ingress-nginx/images.yaml:203:5: invalid digest"))
    );

    // Not errors, but worth a note: a promoter manifest under images/ and images
    // without a promoter manifest.
    let notes: Vec<String> = report.notes.iter().map(Problem::to_string).collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("images/k8s-staging-aws-encryption-provider/promoter-manifest.yaml: ignored")),
        "{notes:#?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("images/k8s-staging-kind/images.yaml: ignored"))
    );

    // Everything else is still loaded and counted.
    let want = independent_counts(&root);
    assert_eq!(
        (
            report.manifests,
            report.images,
            report.digests,
            report.tags,
            report.edges
        ),
        (want.manifests, want.images, want.digests, want.tags, want.edges)
    );
}

/// Sharding the real tree (`--shard i/N`): every shard's load (image copies, the uniform
/// size model of `edges::shard`) within 1.5× of the mean, no digest and no repository in
/// two shards, and the same partition from the files read in the other order.
#[test]
fn the_real_tree_shards_evenly_and_the_same_every_time() {
    use std::collections::{HashMap, HashSet as Set};

    use kpromo::edges::EdgeSet;
    use kpromo::edges::shard::partition;

    let (tmp, _) = consistent_copy();
    let mut manifests = load(&ManifestSource::ThinDir(tmp.path().into()), None).unwrap();
    let edges = EdgeSet::from_manifests(&manifests);
    manifests.reverse();
    let reversed = EdgeSet::from_manifests(&manifests);
    drop(manifests);
    for count in [2u32, 3, 5, 8] {
        let shards = partition(&edges, count);
        assert_eq!(
            shards,
            partition(&reversed, count),
            "{count} shards: stable across file orders"
        );
        let mut load = vec![0u64; count as usize];
        let mut copies = Set::new();
        let mut digest_shard = HashMap::new();
        let mut image_shard = HashMap::new();
        for (edge, shard) in edges.edges().iter().zip(&shards) {
            if copies.insert((edge.dst_registry, edge.image, edge.digest)) {
                load[*shard as usize] += 1;
            }
            assert_eq!(*digest_shard.entry(edge.digest).or_insert(*shard), *shard);
            assert_eq!(*image_shard.entry(edge.image).or_insert(*shard), *shard);
        }
        let mean = load.iter().sum::<u64>() as f64 / f64::from(count);
        let heaviest = *load.iter().max().unwrap() as f64;
        eprintln!("{count} shards: image copies per shard {load:?}, mean {mean:.0}");
        assert!(heaviest <= 1.5 * mean, "{count} shards: loads {load:?}, mean {mean}");
    }
}
