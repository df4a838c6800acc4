//! Strict YAML, validation rules and bad input, on small trees built in temporary
//! directories: every case gives clear problems with file and position, never a panic.
use std::fs;
use std::path::{Path, PathBuf};

use kpromo::check::{CheckReport, check_path};
use kpromo::manifest::load::{load, load_plain};
use kpromo::manifest::{ManifestSource, Problem};

const REGISTRIES: &str = "registries:\n- name: gcr.io/stage\n  src: true\n- name: us.gcr.io/prod\n";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn images_yaml(image: &str, c: char, tags: &str) -> String {
    format!("- name: {image}\n  dmap:\n    \"{}\": {tags}\n", digest(c))
}

/// A temporary thin tree; `files` are (path relative to the root, content).
fn tree(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("manifests")).unwrap();
    fs::create_dir_all(dir.path().join("images")).unwrap();
    for (rel, content) in files {
        let path = dir.path().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
    dir
}

fn problems(report: &CheckReport) -> Vec<String> {
    report.problems.iter().map(Problem::to_string).collect()
}

fn file_with(content: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.yaml");
    fs::write(&path, content).unwrap();
    (dir, path)
}

#[test]
fn unknown_keys_are_errors_with_line_and_column() {
    let text = format!("{REGISTRIES}  sevice-account: x@y\nimages: []\nextra: 1\n");
    let (_dir, path) = file_with(&text);
    let report = check_path(&path);
    let p = problems(&report);
    assert_eq!(p.len(), 1, "{p:?}");
    // The first unknown key stops the parse of the file (serde), at its position.
    assert!(p[0].starts_with(&format!("{}:5:3: ", path.display())), "{p:?}");
    assert!(p[0].contains("sevice-account"), "{p:?}");
}

#[test]
fn a_digest_twice_in_one_dmap_is_an_error_at_the_second() {
    let text = format!(
        "{REGISTRIES}images:\n- name: foo\n  dmap:\n    \"{a}\": [\"1.0\"]\n    \"{a}\": [\"2.0\"]\n",
        a = digest('a')
    );
    let (_dir, path) = file_with(&text);
    let p = problems(&check_path(&path));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with(&format!("{}:9:5: ", path.display())), "{p:?}");
    assert!(p[0].contains("duplicate"), "{p:?}");
}

#[test]
fn service_account_is_accepted_and_images_path_only_in_thin_manifests() {
    let thin = format!("{REGISTRIES}  service-account: sa@robot.com\nimagesPath: \"../../images/a/images.yaml\"\n");
    let images = images_yaml("foo", 'a', "[\"1.0\"]");
    let dir = tree(&[
        ("manifests/a/promoter-manifest.yaml", thin.as_bytes()),
        ("images/a/images.yaml", images.as_bytes()),
    ]);
    let report = check_path(dir.path());
    assert!(report.is_clean(), "{report}");

    let plain = format!("{REGISTRIES}imagesPath: x\nimages: []\n");
    let (_d, path) = file_with(&plain);
    let p = problems(&check_path(&path));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with(&format!("{}:5:1: ", path.display())) && p[0].contains("imagesPath"),
        "{p:?}"
    );
}

#[test]
fn every_rule_applies_to_thin_manifests_and_all_problems_are_collected() {
    let two_sources = "registries:\n- name: gcr.io/a\n  src: true\n- name: \"\"\n- name: gcr.io/b\n  src: true\n";
    let no_source = "registries:\n- name: gcr.io/a\n";
    let no_registries = "registries: []\n";
    let images_a = format!(
        "- name: \"\"\n  dmap: {{}}\n- name: foo\n  dmap:\n    \"sha256:{short}\": [\"1.0\", \"-bad\"]\n    \"{good}\": [\"ok\", \".bad\"]\n",
        short = "c".repeat(63),
        good = digest('d'),
    );
    let images_ok = images_yaml("foo", 'e', "[]");
    let dir = tree(&[
        ("manifests/a/promoter-manifest.yaml", two_sources.as_bytes()),
        ("images/a/images.yaml", images_a.as_bytes()),
        ("manifests/b/promoter-manifest.yaml", no_source.as_bytes()),
        ("images/b/images.yaml", images_ok.as_bytes()),
        ("manifests/c/promoter-manifest.yaml", no_registries.as_bytes()),
        ("images/c/images.yaml", images_ok.as_bytes()),
        ("manifests/d/promoter-manifest.yaml", b""),
        ("images/d/images.yaml", images_ok.as_bytes()),
    ]);
    let r = |rel: &str| dir.path().join(rel).display().to_string();
    let report = check_path(dir.path());
    assert_eq!(
        problems(&report),
        [
            // Sorted by file, position, then message.
            format!(
                "{}:1:3: images: 'dmap' field cannot be empty",
                r("images/a/images.yaml")
            ),
            format!(
                "{}:1:3: images: 'name' field cannot be empty",
                r("images/a/images.yaml")
            ),
            format!(
                "{}:5:5: invalid digest: sha256:{}",
                r("images/a/images.yaml"),
                "c".repeat(63)
            ),
            format!("{}:5:5: invalid tag: -bad", r("images/a/images.yaml")),
            format!("{}:6:5: invalid tag: .bad", r("images/a/images.yaml")),
            format!(
                "{}:4:3: registries: 'name' field cannot be empty",
                r("manifests/a/promoter-manifest.yaml")
            ),
            format!(
                "{}:5:3: cannot have more than 1 source registry",
                r("manifests/a/promoter-manifest.yaml")
            ),
            format!(
                "{}:2:3: source registry must be set",
                r("manifests/b/promoter-manifest.yaml")
            ),
            format!(
                "{}:1:13: 'registries' field cannot be empty",
                r("manifests/c/promoter-manifest.yaml")
            ),
            format!(
                "{}:1:1: 'registries' field cannot be empty",
                r("manifests/d/promoter-manifest.yaml")
            ),
        ]
    );
    let err = load(&ManifestSource::ThinDir(dir.path().into()), None).unwrap_err();
    assert_eq!(err.problems, report.problems);
    assert_eq!(err.to_string().lines().count(), 10);
}

#[test]
fn plain_manifest_rules_and_load_plain_errors() {
    let text = "registries:\n- name: gcr.io/a\nimages:\n- name: foo\n";
    let (_d, path) = file_with(text);
    let err = load_plain(&path).unwrap_err();
    let got: Vec<String> = err.problems.iter().map(Problem::to_string).collect();
    let f = path.display();
    assert_eq!(
        got,
        [
            format!("{f}:2:3: source registry must be set"),
            format!("{f}:4:3: images: 'dmap' field cannot be empty"),
        ]
    );
}

#[test]
fn missing_paths_are_one_clear_problem_each() {
    let missing = Path::new("/nonexistent/kpromo-tree");
    assert_eq!(
        problems(&check_path(missing)),
        ["/nonexistent/kpromo-tree: no such file or directory"]
    );
    let err = load(&ManifestSource::ThinDir(missing.into()), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/nonexistent/kpromo-tree: stat /nonexistent/kpromo-tree/images: no such file or directory\n\
         /nonexistent/kpromo-tree: stat /nonexistent/kpromo-tree/manifests: no such file or directory"
    );
}

#[test]
fn tree_without_any_manifest_is_the_go_error() {
    let dir = tree(&[("manifests/a/README.md", b"hello")]);
    let d = dir.path().display();
    assert_eq!(
        problems(&check_path(dir.path())),
        [format!("{d}: no manifests found in dir: {d}")]
    );
}

#[test]
fn manifest_directly_under_manifests_is_unexpected() {
    let images = images_yaml("foo", 'a', "[]");
    let dir = tree(&[
        ("manifests/promoter-manifest.yaml", REGISTRIES.as_bytes()),
        ("manifests/a/promoter-manifest.yaml", REGISTRIES.as_bytes()),
        ("images/a/images.yaml", images.as_bytes()),
    ]);
    let p = dir.path().join("manifests/promoter-manifest.yaml");
    assert_eq!(
        problems(&check_path(dir.path())),
        [format!("{p}: unexpected manifest path \"{p}\"", p = p.display())]
    );
}

#[test]
fn images_yaml_that_is_a_directory_is_not_a_regular_file() {
    let dir = tree(&[("manifests/a/promoter-manifest.yaml", REGISTRIES.as_bytes())]);
    fs::create_dir_all(dir.path().join("images/a/images.yaml")).unwrap();
    let r = |rel: &str| dir.path().join(rel).display().to_string();
    assert_eq!(
        problems(&check_path(dir.path())),
        [format!(
            "{}: corresponding file \"{}\" is not a regular file",
            r("manifests/a/promoter-manifest.yaml"),
            r("images/a/images.yaml")
        )]
    );
}

#[test]
fn bad_files_each_give_one_problem_and_the_rest_still_loads() {
    let good = images_yaml("foo", 'a', "[\"1.0\"]");
    // A billion-laughs bomb in the ignored `imagesPath` key: ignoring it still walks it.
    let mut bomb = format!("{REGISTRIES}imagesPath:\n  a: &a [x, x, x, x, x, x, x, x, x]\n");
    let mut prev = 'a';
    for c in 'b'..='k' {
        let refs = vec![format!("*{prev}"); 9].join(", ");
        bomb.push_str(&format!("  {c}: &{c} [{refs}]\n"));
        prev = c;
    }
    let dir = tree(&[
        ("manifests/a/promoter-manifest.yaml", REGISTRIES.as_bytes()),
        ("images/a/images.yaml", good.as_bytes()),
        (
            "manifests/bin/promoter-manifest.yaml",
            b"registries:\n- name: gcr.io/\xff\xfe\n",
        ),
        ("images/bin/images.yaml", good.as_bytes()),
        ("manifests/bomb/promoter-manifest.yaml", bomb.as_bytes()),
        ("images/bomb/images.yaml", good.as_bytes()),
        ("manifests/big/promoter-manifest.yaml", REGISTRIES.as_bytes()),
        ("manifests/map/promoter-manifest.yaml", REGISTRIES.as_bytes()),
        ("images/map/images.yaml", b"name: foo\ndmap: {}\n"),
    ]);
    let big = dir.path().join("images/big/images.yaml");
    fs::create_dir_all(big.parent().unwrap()).unwrap();
    // Sparse: a 100 MB file without writing 100 MB.
    fs::File::create(&big).unwrap().set_len(100 * 1024 * 1024).unwrap();

    let report = check_path(dir.path());
    let p = problems(&report);
    let r = |rel: &str| dir.path().join(rel).display().to_string();
    assert_eq!(p.len(), 4, "{p:#?}");
    assert_eq!(
        p[0],
        format!(
            "{}: file is too large: 104857600 bytes (the limit is 64 MiB)",
            r("images/big/images.yaml")
        )
    );
    assert_eq!(
        p[1],
        format!("{}:1:1: expected sequence start", r("images/map/images.yaml"))
    );
    assert_eq!(
        p[2],
        format!(
            "{}:2:16: invalid UTF-8: byte 0xff at offset 27",
            r("manifests/bin/promoter-manifest.yaml")
        )
    );
    assert!(
        p[3].starts_with(&format!("{}:", r("manifests/bomb/promoter-manifest.yaml")))
            && p[3].contains("too large or too complex"),
        "{p:#?}"
    );
    assert_eq!(report.manifests, 1, "the good project still loads");
    assert_eq!(report.edges, 1);
}

#[test]
fn crlf_and_comment_only_files_load() {
    let crlf = images_yaml("foo", 'a', "[\"1.0\"]").replace('\n', "\r\n");
    let dir = tree(&[
        (
            "manifests/a/promoter-manifest.yaml",
            REGISTRIES.replace('\n', "\r\n").as_bytes(),
        ),
        ("images/a/images.yaml", crlf.as_bytes()),
        ("manifests/b/promoter-manifest.yaml", REGISTRIES.as_bytes()),
        ("images/b/images.yaml", b"# TODO: add images\n"),
    ]);
    let report = check_path(dir.path());
    assert!(report.is_clean(), "{report}");
    assert_eq!(
        (report.manifests, report.images, report.tags, report.edges),
        (2, 1, 1, 1)
    );
    let manifests = load(&ManifestSource::ThinDir(dir.path().into()), None).unwrap();
    assert_eq!(manifests[0].images[0].dmap[0].tags, ["1.0"], "no stray \\r");
}

#[test]
fn stray_files_are_notes_not_problems() {
    let images = images_yaml("foo", 'a', "[]");
    let dir = tree(&[
        ("manifests/a/promoter-manifest.yaml", REGISTRIES.as_bytes()),
        ("images/a/images.yaml", images.as_bytes()),
        ("images/b/promoter-manifest.yaml", REGISTRIES.as_bytes()),
        ("images/c/images.yaml", images.as_bytes()),
    ]);
    let report = check_path(dir.path());
    assert!(report.is_clean(), "{report}");
    let notes: Vec<String> = report.notes.iter().map(Problem::to_string).collect();
    let r = |rel: &str| dir.path().join(rel).display().to_string();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[0].starts_with(&r("images/b/promoter-manifest.yaml")), "{notes:?}");
    assert!(notes[1].starts_with(&r("images/c/images.yaml")), "{notes:?}");
}

#[test]
fn pathologically_deep_trees_are_reported_not_walked_forever() {
    let images = images_yaml("foo", 'a', "[]");
    let dir = tree(&[
        ("manifests/a/promoter-manifest.yaml", REGISTRIES.as_bytes()),
        ("images/a/images.yaml", images.as_bytes()),
    ]);
    let mut deep = dir.path().join("manifests/deep");
    for i in 0..40 {
        deep.push(format!("d{i}"));
    }
    fs::create_dir_all(&deep).unwrap();
    let report = check_path(dir.path());
    let p = problems(&report);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("directory nesting deeper than 32 levels"), "{p:?}");
    assert_eq!(report.manifests, 1);
}

#[test]
fn duplicate_top_level_keys_are_errors() {
    let text = format!("{REGISTRIES}images: []\nregistries: []\n");
    let (_dir, path) = file_with(&text);
    let p = problems(&check_path(&path));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with(&format!("{}:6:1: ", path.display())), "{p:?}");
}

#[test]
fn images_that_is_a_file_is_not_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("manifests/a")).unwrap();
    fs::write(dir.path().join("images"), "not a directory").unwrap();
    let d = dir.path().display();
    assert_eq!(
        problems(&check_path(dir.path())),
        [format!("{d}: \"{d}/images\" is not a directory")]
    );
}
