//! The legacy Go fixture cases (promo-tools' `image/manifest/testdata` and legacy `TestValidateThinManifest` cases), written afresh under `testdata/thin/`, and
//! the plain-manifest fixture, checked through the public API the CLI uses.
use std::path::{Path, PathBuf};

use kpromo::check::{CheckReport, check_path};
use kpromo::manifest::load::{load, load_plain};
use kpromo::manifest::{ManifestSource, Problem};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(rel)
}

fn problems(report: &CheckReport) -> Vec<String> {
    report.problems.iter().map(Problem::to_string).collect()
}

fn summary(report: &CheckReport) -> String {
    report.to_string().lines().last().unwrap_or_default().to_string()
}

#[test]
fn valid_trees_check_clean_and_load() {
    // (fixture, summary line)
    let cases = [
        ("singleton", "1 manifests, 1 images, 1 digests, 1 tags, 3 edges"),
        ("multiple-rebases", "2 manifests, 2 images, 2 digests, 2 tags, 4 edges"),
        (
            "overlapping-src-registries",
            "2 manifests, 2 images, 2 digests, 2 tags, 2 edges",
        ),
        // Same digest and tag from two projects: one edge, not an error.
        (
            "overlapping-destination-vertices-same-digest",
            "2 manifests, 2 images, 2 digests, 2 tags, 1 edges",
        ),
        (
            "malformed-directory-tree-structure-bad-prefix-is-ignored",
            "1 manifests, 1 images, 1 digests, 1 tags, 1 edges",
        ),
    ];
    for (name, want) in cases {
        let dir = fixture(&format!("thin/valid/{name}"));
        let report = check_path(&dir);
        assert!(report.is_clean(), "{name}:\n{report}");
        assert_eq!(summary(&report), want, "{name}");
        let manifests = load(&ManifestSource::ThinDir(dir), None).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(manifests.len(), report.manifests, "{name}");
    }
}

#[test]
fn singleton_loads_the_registries_and_images() {
    let dir = fixture("thin/valid/singleton");
    let manifests = load(&ManifestSource::ThinDir(dir.clone()), None).unwrap();
    let [m] = manifests.as_slice() else {
        panic!("one manifest expected")
    };
    assert_eq!(*m.path, dir.join("manifests/a/promoter-manifest.yaml"));
    assert_eq!(*m.images_path, dir.join("images/a/images.yaml"));
    assert_eq!(m.source().map(|r| r.name.as_str()), Some("gcr.io/foo-staging"));
    let dsts: Vec<&str> = m.destinations().map(|r| r.name.as_str()).collect();
    assert_eq!(
        dsts,
        ["us.gcr.io/some-prod", "eu.gcr.io/some-prod", "asia.gcr.io/some-prod"]
    );
    assert_eq!(m.registries[1].service_account.as_deref(), Some("sa@robot.com"));
    assert_eq!(m.images[0].name, "foo-controller");
    assert_eq!(m.images[0].dmap[0].tags, ["1.0"]);
    assert_eq!((m.images[0].dmap[0].pos.line, m.images[0].dmap[0].pos.column), (3, 5));
}

#[test]
fn redundant_same_digest_is_a_note_naming_both_manifests() {
    let dir = fixture("thin/valid/overlapping-destination-vertices-same-digest");
    let report = check_path(&dir);
    let notes: Vec<String> = report.notes.iter().map(Problem::to_string).collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].starts_with(&format!(
            "{}: redundant promotion: sha256:",
            dir.join("manifests/a/promoter-manifest.yaml").display()
        )),
        "{}",
        notes[0]
    );
    assert!(notes[0].contains(&dir.join("manifests/b/promoter-manifest.yaml").display().to_string()));
    assert!(report.to_string().contains("note: "));
}

#[test]
fn bad_prefix_directory_is_not_parsed() {
    // manifest/b/promoter-manifest.yaml is not even valid YAML: it must not be read.
    let report = check_path(&fixture(
        "thin/valid/malformed-directory-tree-structure-bad-prefix-is-ignored",
    ));
    assert!(report.is_clean(), "{report}");
}

#[test]
fn empty_tree_is_the_go_stat_error() {
    let dir = fixture("thin/invalid/empty");
    let report = check_path(&dir);
    let d = dir.display();
    assert_eq!(
        problems(&report),
        [
            format!("{d}: stat {d}/images: no such file or directory"),
            format!("{d}: stat {d}/manifests: no such file or directory"),
        ]
    );
    assert_eq!(summary(&report), "0 manifests, 0 images, 0 digests, 0 tags, 0 edges");
    let err = load(&ManifestSource::ThinDir(dir), None).unwrap_err();
    assert_eq!(err.problems, report.problems);
}

#[test]
fn different_digests_on_one_tag_overlap_with_both_sources() {
    let dir = fixture("thin/invalid/overlapping-destination-vertices-different-digest");
    let report = check_path(&dir);
    let a = dir.join("images/a/images.yaml");
    let b = dir.join("images/b/images.yaml");
    let (aaaa, bbbb) = ("a".repeat(64), "b".repeat(64));
    assert_eq!(
        problems(&report),
        [format!(
            "{a}:3:5: overlapping edges detected: us.gcr.io/some-prod/foo-controller:1.0 is wanted with different \
             digests by gcr.io/foo-staging/foo-controller@sha256:{aaaa} ({a}:3:5), \
             gcr.io/bar-staging/foo-controller@sha256:{bbbb} ({b}:3:5)",
            a = a.display(),
            b = b.display()
        )]
    );
    // Both files load: overlap is a plan-time (edge) error, not a load error.
    assert_eq!(load(&ManifestSource::ThinDir(dir), None).map(|m| m.len()), Ok(2));
}

#[test]
fn missing_images_file_is_reported_and_the_rest_still_loads() {
    let dir = fixture("thin/invalid/malformed-directory-tree-structure");
    let report = check_path(&dir);
    assert_eq!(
        problems(&report),
        [format!(
            "{}: corresponding file \"{}\" does not exist",
            dir.join("manifests/b/promoter-manifest.yaml").display(),
            dir.join("images/b/images.yaml").display()
        )]
    );
    assert_eq!(summary(&report), "1 manifests, 1 images, 1 digests, 1 tags, 1 edges");
}

#[test]
fn nested_manifest_is_an_unexpected_path() {
    let dir = fixture("thin/invalid/malformed-directory-tree-structure-nested");
    let report = check_path(&dir);
    let nested = dir.join("manifests/b/c/promoter-manifest.yaml");
    assert_eq!(
        problems(&report),
        [format!("{n}: unexpected manifest path \"{n}\"", n = nested.display())]
    );
    // manifests/b itself has no promoter manifest: skipped with a note, as Go warns.
    let notes: Vec<String> = report.notes.iter().map(Problem::to_string).collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains(&dir.join("manifests/b").display().to_string()) && n.contains("skipping")),
        "{notes:?}"
    );
}

#[test]
fn trailing_slash_on_the_root_works() {
    let dir = fixture("thin/valid/singleton");
    let with_slash = PathBuf::from(format!("{}/", dir.display()));
    let report = check_path(&with_slash);
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.manifests, 1);
    let manifests = load(&ManifestSource::ThinDir(with_slash), None).unwrap();
    // Paths print without a doubled slash.
    assert_eq!(*manifests[0].path, dir.join("manifests/a/promoter-manifest.yaml"));
}

#[test]
fn plain_manifest_keeps_tags_verbatim_and_counts_tagless_edges() {
    let path = fixture("plain/manifest.yaml");
    let m = load_plain(&path).unwrap();
    assert_eq!(m.source().map(|r| r.name.as_str()), Some("gcr.io/example-staging"));
    assert_eq!(m.destinations().count(), 2);
    assert_eq!(m.images[0].dmap[0].tags, ["1.10", "latest"]);
    assert!(m.images[0].dmap[1].tags.is_empty());
    assert_eq!(m.images[1].name, "banana/split");
    assert_eq!(m.images[1].dmap[0].tags, ["1.0"]);
    let report = check_path(&path);
    assert!(report.is_clean(), "{report}");
    // 2 tags + 1 tagless + 1 tag = 4 edges per destination.
    assert_eq!(summary(&report), "1 manifests, 2 images, 3 digests, 3 tags, 8 edges");
}
