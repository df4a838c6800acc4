//! Interoperability with skopeo (an independent client, Debian package `skopeo`,
//! installed by scripts/test.sh): skopeo reads and copies what kpromo wrote, and kpromo
//! reads what skopeo wrote.
use std::path::Path;
use std::process::Command;

use kpromo::registry::oci_layout;
use kpromo::registry::{ManifestRef, Registry};

use crate::layout::{ToRaw, digest, push_image, push_manifest, read_all, tag};
use crate::support::images::{Blob, Image, Index};

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("skopeo must be installed (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn oci(root: &Path, repo: &str, tag: &str) -> String {
    format!("oci:{}/{repo}:{tag}", root.display())
}

/// A single-arch image tagged twice and a two-arch index with tagless children.
struct World {
    single: Image,
    amd: Image,
    arm: Image,
    multi: Index,
}

async fn write_world(reg: &dyn Registry) -> World {
    let base = Blob::tar("etc/os-release", b"ID=demo\n");
    let single = Image::for_layout("amd64", vec![base.clone(), Blob::tar("app", b"app v1\n")], "single");
    let amd = Image::for_layout("amd64", vec![base.clone()], "multi");
    let arm = Image::for_layout("arm64", vec![base, Blob::tar("arm", b"arm only\n")], "multi");
    let multi = Index::for_layout(vec![amd.clone(), arm.clone()]);
    push_image(reg, "team/single", &single, &["v1", "latest"]).await;
    push_image(reg, "team/multi", &amd, &[]).await;
    push_image(reg, "team/multi", &arm, &[]).await;
    push_manifest(reg, "team/multi", &multi.raw(), &["v2"]).await;
    World {
        single,
        amd,
        arm,
        multi,
    }
}

#[tokio::test]
async fn skopeo_reads_and_copies_what_we_wrote_and_we_read_its_copy() {
    let dir = tempfile::tempdir().unwrap();
    let ours = oci_layout::open(&dir.path().join("ours")).unwrap();
    let world = write_world(&ours).await;
    let root = ours.root();

    assert_eq!(
        skopeo(&["inspect", "--raw", &oci(root, "team/single", "v1")]),
        world.single.manifest
    );
    assert_eq!(
        skopeo(&["inspect", "--raw", &oci(root, "team/single", "latest")]),
        world.single.manifest
    );
    assert_eq!(
        skopeo(&["inspect", "--raw", &oci(root, "team/multi", "v2")]),
        world.multi.manifest
    );
    let config: serde_json::Value =
        serde_json::from_slice(&skopeo(&["inspect", "--config", &oci(root, "team/single", "v1")])).unwrap();
    assert_eq!(config["config"]["Labels"]["org.example.demo"], "single");

    // skopeo copies out of our layout into a layout of its own, byte for byte.
    let theirs_root = dir.path().join("theirs");
    for (repo, tag) in [("team/single", "v1"), ("team/multi", "v2")] {
        std::fs::create_dir_all(theirs_root.join(repo)).unwrap(); // skopeo wants the directory
        skopeo(&[
            "copy",
            "--all",
            "--preserve-digests",
            &oci(root, repo, tag),
            &oci(&theirs_root, repo, tag),
        ]);
    }
    assert_eq!(
        skopeo(&["inspect", "--raw", &oci(&theirs_root, "team/multi", "v2")]),
        world.multi.manifest
    );

    // And we read skopeo's layout: tags, manifests, children found by digest although
    // skopeo lists only the top manifest in index.json, and verified blobs.
    let theirs = oci_layout::open(&theirs_root).unwrap();
    assert_eq!(theirs.catalog().await.unwrap(), ["team/multi", "team/single"]);
    assert_eq!(theirs.list_tags("team/multi").await.unwrap().unwrap().tags, ["v2"]);
    assert_eq!(
        theirs.get_manifest("team/single", &tag("v1")).await.unwrap(),
        Some(world.single.raw())
    );
    assert_eq!(
        theirs.get_manifest("team/multi", &tag("v2")).await.unwrap(),
        Some(world.multi.raw())
    );
    for child in [&world.amd, &world.arm] {
        let got = theirs
            .get_manifest("team/multi", &ManifestRef::Digest(child.raw().digest))
            .await
            .unwrap();
        assert_eq!(got.as_ref(), Some(&child.raw()));
        for layer in &child.layers {
            let bytes = read_all(theirs.get_blob("team/multi", &digest(layer)).await.unwrap())
                .await
                .unwrap();
            assert_eq!(bytes, layer.bytes());
        }
    }
}

#[tokio::test]
async fn skopeo_can_write_into_a_layout_we_then_extend() {
    // skopeo adds a tag to a repository we created; our next write keeps its entry.
    let dir = tempfile::tempdir().unwrap();
    let ours = oci_layout::open(dir.path()).unwrap();
    let world = write_world(&ours).await;
    let root = ours.root();
    skopeo(&[
        "copy",
        "--preserve-digests",
        &oci(root, "team/single", "v1"),
        &oci(root, "team/single", "from-skopeo"),
    ]);
    ours.put_manifest("team/single", &tag("v3"), &world.single.raw())
        .await
        .unwrap();
    assert_eq!(
        ours.list_tags("team/single").await.unwrap().unwrap().tags,
        ["from-skopeo", "latest", "v1", "v3"]
    );
    assert_eq!(
        skopeo(&["inspect", "--raw", &oci(root, "team/single", "from-skopeo")]),
        world.single.manifest
    );
    assert_eq!(
        skopeo(&["inspect", "--raw", &oci(root, "team/single", "v3")]),
        world.single.manifest
    );
}
