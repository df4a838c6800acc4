//! `kpromo cip --manifest-based-snapshot-of` run as a binary on plain and thin manifests:
//! the printed bytes must be Go's images.yaml / CSV format exactly, and offline.
use std::path::Path;
use std::process::{Command, Output};

fn kpromo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpromo"))
        .args(args)
        .output()
        .expect("run kpromo")
}

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write fixture");
}

const REGISTRIES: &str = "registries:
- name: gcr.io/staging
  src: true
- name: gcr.io/prod
- name: gcr.io/prod/mirror
- name: gcr.io/prod-other
";

/// Tags deliberately unsorted and `1.10` unquoted: it must stay the string "1.10" and
/// sort before "1.9" as a string.
fn images_yaml(indent: &str) -> String {
    let (a, b, c) = (digest('a'), digest('b'), digest('c'));
    format!(
        "{indent}- name: foo
{indent}  dmap:
{indent}    \"{b}\": []
{indent}    \"{a}\": [\"latest\", \"1.9\", 1.10]
{indent}- name: bar/baz
{indent}  dmap:
{indent}    \"{c}\": [\"v1\"]
"
    )
}

/// What Go prints for gcr.io/prod: images sorted by name (the `mirror` destination below
/// gcr.io/prod becomes a name prefix, gcr.io/prod-other is not below it), digests sorted,
/// tags sorted as strings, `%q`-quoted, then fmt.Println's extra newline.
fn expected_yaml() -> String {
    let (a, b, c) = (digest('a'), digest('b'), digest('c'));
    let mut out = String::new();
    for prefix in ["", "mirror/"] {
        out.push_str(&format!("- name: {prefix}bar/baz\n  dmap:\n    \"{c}\": [\"v1\"]\n"));
        out.push_str(&format!(
            "- name: {prefix}foo\n  dmap:\n    \"{a}\": [\"1.10\", \"1.9\", \"latest\"]\n    \"{b}\": []\n"
        ));
    }
    // "bar/baz" < "foo" < "mirror/bar/baz" < "mirror/foo": the loop order is the sort order.
    out.push('\n');
    out
}

fn expected_csv() -> String {
    let (a, b, c) = (digest('a'), digest('b'), digest('c'));
    let mut out = String::new();
    for p in ["", "mirror/"] {
        out.push_str(&format!("{p}bar/baz@{c},{p}bar/baz:v1\n"));
        out.push_str(&format!(
            "{p}foo@{a},{p}foo:1.10\n{p}foo@{a},{p}foo:1.9\n{p}foo@{a},{p}foo:latest\n"
        ));
        out.push_str(&format!("{p}foo@{b},-\n"));
    }
    out.push('\n');
    out
}

fn plain_manifest(dir: &Path) -> String {
    let path = dir.join("manifest.yaml");
    write(&path, &format!("{REGISTRIES}images:\n{}", images_yaml("")));
    path.to_string_lossy().into_owned()
}

fn thin_tree(dir: &Path) -> String {
    write(&dir.join("manifests/proj/promoter-manifest.yaml"), REGISTRIES);
    write(&dir.join("images/proj/images.yaml"), &images_yaml(""));
    dir.to_string_lossy().into_owned()
}

fn assert_output(out: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "stderr: {stderr}");
}

#[test]
fn plain_manifest_yaml_snapshot_is_byte_identical_to_go() {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = plain_manifest(dir.path());
    let out = kpromo(&[
        "cip",
        "--manifest",
        &manifest,
        "--manifest-based-snapshot-of",
        "gcr.io/prod",
    ]);
    assert_output(&out, &expected_yaml());
}

#[test]
fn thin_manifests_are_snapshotted_too_unlike_go() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = thin_tree(dir.path());
    let out = kpromo(&[
        "cip",
        "--thin-manifest-dir",
        &root,
        "--manifest-based-snapshot-of",
        "gcr.io/prod/",
    ]);
    assert_output(&out, &expected_yaml());
}

#[test]
fn csv_snapshot_and_case_insensitive_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = thin_tree(dir.path());
    let out = kpromo(&[
        "cip",
        "--thin-manifest-dir",
        &root,
        "--manifest-based-snapshot-of",
        "gcr.io/prod",
        "--output",
        "CSV",
    ]);
    assert_output(&out, &expected_csv());
}

#[test]
fn a_sub_path_registry_lists_only_its_own_images() {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = plain_manifest(dir.path());
    let out = kpromo(&[
        "cip",
        "--manifest",
        &manifest,
        "--manifest-based-snapshot-of",
        "gcr.io/prod/mirror",
    ]);
    let (a, b, c) = (digest('a'), digest('b'), digest('c'));
    let expected = format!(
        "- name: bar/baz\n  dmap:\n    \"{c}\": [\"v1\"]\n\
         - name: foo\n  dmap:\n    \"{a}\": [\"1.10\", \"1.9\", \"latest\"]\n    \"{b}\": []\n\n"
    );
    assert_output(&out, &expected);
}

#[test]
fn a_registry_nobody_promotes_to_gives_an_empty_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = plain_manifest(dir.path());
    let out = kpromo(&[
        "cip",
        "--manifest",
        &manifest,
        "--manifest-based-snapshot-of",
        "gcr.io/pro",
    ]);
    assert_output(&out, "\n");
}

#[test]
fn overlapping_manifests_are_refused_with_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = thin_tree(dir.path());
    // A second project tags another digest as foo:latest for the same destination.
    write(&dir.path().join("manifests/other/promoter-manifest.yaml"), REGISTRIES);
    write(
        &dir.path().join("images/other/images.yaml"),
        &format!("- name: foo\n  dmap:\n    \"{}\": [\"latest\"]\n", digest('d')),
    );
    let out = kpromo(&[
        "cip",
        "--thin-manifest-dir",
        &root,
        "--manifest-based-snapshot-of",
        "gcr.io/prod",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("overlapping edges"), "{stderr}");
    assert!(stderr.contains("gcr.io/prod/foo:latest"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn broken_manifests_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("manifest.yaml");
    write(&path, "registries: [\n");
    let manifest = path.to_string_lossy().into_owned();
    let out = kpromo(&[
        "cip",
        "--manifest",
        &manifest,
        "--manifest-based-snapshot-of",
        "gcr.io/prod",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("manifest.yaml"), "{stderr}");
}

#[test]
fn manifest_validate_exit_codes_follow_the_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = thin_tree(dir.path());
    let out = kpromo(&["manifest", "validate", &root]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    // 1 manifest; 2 images; 3 digests; 4 tags; edges = 3 destinations x (3 + 1 + 1).
    assert_eq!(stdout.trim_end(), "1 manifests, 2 images, 3 digests, 4 tags, 15 edges");

    write(
        &dir.path().join("images/proj/images.yaml"),
        "- name: foo\n  dmap:\n    \"sha256:abc\": [\"1.0\"]\n",
    );
    let out = kpromo(&["manifest", "validate", &root]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("images.yaml:3:"),
        "problems carry file:line:col: {stdout}"
    );
    assert!(stdout.contains("invalid digest: sha256:abc"), "{stdout}");
}
