//! `kpromo cip --snapshot` run as a binary against a real CNCF distribution registry
//! (started by the harness on 127.0.0.1, storage in /dev/shm), with images pushed by the
//! harness's own client. Output must be Go's images.yaml / CSV format exactly.
use std::process::Output;

use crate::support;
use crate::support::{Format, Image, Index, RegistryOptions, TestRegistry, within};

async fn kpromo(args: &[&str]) -> Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_kpromo"))
        .args(args)
        .env("DOCKER_CONFIG", "/nonexistent/kpromo-test-docker-config")
        .output();
    within(120, "kpromo", run).await.expect("run kpromo")
}

fn assert_output(out: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "stderr: {stderr}");
}

/// A registry holding, below `prod`: `foo` tagged `1.10`, `1.9` and `latest`; a Docker
/// manifest list `sub/bar:2.0` with two tagless children; beside it `prod-other/baz`
/// and a repository named `prod` itself (neither is below `prod`).
struct World {
    registry: TestRegistry,
    foo_digest: String,
    bar: Index,
    baz_digest: String,
}

async fn world() -> World {
    let registry = TestRegistry::start(RegistryOptions::plain());
    let pusher = registry.pusher();
    let foo_digest = pusher
        .push_image("prod/foo", &Image::simple(Format::Oci, 1), &["latest", "1.9", "1.10"])
        .await;
    let bar = Index::multi_arch(Format::Docker, 2, &["amd64", "arm64/v8"], None);
    pusher.push_index("prod/sub/bar", &bar, &["2.0"]).await;
    let baz_digest = pusher
        .push_image("prod-other/baz", &Image::simple(Format::Oci, 3), &["v1"])
        .await;
    pusher
        .push_image("prod", &Image::simple(Format::Oci, 4), &["root"])
        .await;
    World {
        registry,
        foo_digest,
        bar,
        baz_digest,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn yaml_snapshot_of_a_plain_registry() {
    let w = world().await;
    let reg = format!("{}/prod", w.registry.host());
    let out = kpromo(&["cip", "--snapshot", &reg]).await;
    // Children of the list carry no tag, and a plain registry cannot list untagged
    // manifests: they are absent (documented in docs/flags.md).
    let expected = format!(
        "- name: foo\n  dmap:\n    \"{}\": [\"1.10\", \"1.9\", \"latest\"]\n\
         - name: sub/bar\n  dmap:\n    \"{}\": [\"2.0\"]\n\n",
        w.foo_digest, w.bar.digest
    );
    assert_output(&out, &expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn whole_registry_csv_snapshot_with_tag_filter() {
    let w = world().await;
    let out = kpromo(&[
        "cip",
        "--snapshot",
        &w.registry.host(),
        "--snapshot-tag",
        "1.9",
        "--output",
        "csv",
    ])
    .await;
    assert_output(&out, &format!("prod/foo@{},prod/foo:1.9\n\n", w.foo_digest));

    let out = kpromo(&[
        "cip",
        "--snapshot",
        &w.registry.host(),
        "--snapshot-tag",
        "v1",
        "--output",
        "csv",
    ])
    .await;
    assert_output(&out, &format!("prod-other/baz@{},prod-other/baz:v1\n\n", w.baz_digest));
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_registry_exits_1_naming_it() {
    let port = support::free_port();
    let reg = format!("127.0.0.1:{port}/prod");
    let out = kpromo(&["cip", "--snapshot", &reg]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn minimal_manifest_based_snapshot_drops_tagless_children_read_from_the_registry() {
    let w = world().await;
    let host = w.registry.host();
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = dir.path().join("manifest.yaml");
    let children: Vec<String> = w
        .bar
        .children
        .iter()
        .map(|c| format!("    \"{}\": []\n", c.digest))
        .collect();
    std::fs::write(
        &manifest,
        format!(
            "registries:\n- name: 127.0.0.1:1/staging\n  src: true\n- name: {host}/prod\n\
             images:\n- name: foo\n  dmap:\n    \"{}\": []\n- name: sub/bar\n  dmap:\n    \"{}\": [\"2.0\"]\n{}",
            w.foo_digest,
            w.bar.digest,
            children.concat()
        ),
    )
    .expect("write manifest");
    let manifest = manifest.to_string_lossy().into_owned();
    let reg = format!("{host}/prod");

    // Offline: everything the manifest lists, children included, sorted by digest.
    let out = kpromo(&["cip", "--manifest", &manifest, "--manifest-based-snapshot-of", &reg]).await;
    let mut bar: Vec<(String, &str)> = w.bar.children.iter().map(|c| (c.digest.clone(), "[]")).collect();
    bar.push((w.bar.digest.clone(), "[\"2.0\"]"));
    bar.sort();
    let bar_lines: String = bar.iter().map(|(d, tags)| format!("    \"{d}\": {tags}\n")).collect();
    let expected = format!(
        "- name: foo\n  dmap:\n    \"{}\": []\n- name: sub/bar\n  dmap:\n{bar_lines}\n",
        w.foo_digest
    );
    assert_output(&out, &expected);

    // Minimal: the list is read from the registry and its tagless children disappear;
    // foo stays, tagless but nobody's child.
    let out = kpromo(&[
        "cip",
        "--manifest",
        &manifest,
        "--manifest-based-snapshot-of",
        &reg,
        "--minimal-snapshot",
    ])
    .await;
    let expected = format!(
        "- name: foo\n  dmap:\n    \"{}\": []\n- name: sub/bar\n  dmap:\n    \"{}\": [\"2.0\"]\n\n",
        w.foo_digest, w.bar.digest
    );
    assert_output(&out, &expected);
}
