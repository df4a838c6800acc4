//! The OCI-layout backend through the `Registry` trait: round trips, verification,
//! missing repositories, and what is (not) left on disk after failures.
use bytes::Bytes;
use futures_util::StreamExt as _;
use kpromo::digest::Digest;
use kpromo::registry::oci_layout::{self, OciLayout};
use kpromo::registry::{Error, ManifestRef, MountOutcome, RawManifest, Registry};

use crate::layout::{ToRaw, chunked, digest, files, push_image, push_manifest, put, read_all, tag};
use crate::support::images::{
    Blob, DOCKER_CONFIG, DOCKER_LIST, DOCKER_MANIFEST, Image, Index, OCI_INDEX, OCI_MANIFEST,
};

fn layout() -> (tempfile::TempDir, OciLayout) {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = oci_layout::open(&dir.path().join("reg")).expect("open");
    (dir, reg)
}

#[tokio::test]
async fn blob_round_trip_streams_and_counts() {
    let (_dir, reg) = layout();
    let blob = Blob::from_bytes((0..700_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    reg.put_blob("team/app", &digest(&blob), blob.size, chunked(&blob.bytes(), 7))
        .await
        .unwrap();
    assert_eq!(reg.blob_size("team/app", &digest(&blob)).await.unwrap(), Some(700_000));
    let stream = reg.get_blob("team/app", &digest(&blob)).await.unwrap();
    assert_eq!(read_all(stream).await.unwrap(), blob.bytes());
    let path = reg.root().join("team/app/blobs/sha256").join(digest(&blob).hex());
    assert_eq!(std::fs::read(path).unwrap(), blob.bytes());
    assert!(reg.root().join("team/app/oci-layout").is_file());
    let stats = reg.stats();
    assert_eq!(stats.bytes_written, 700_000);
    assert_eq!(stats.bytes_read, 700_000);
    assert_eq!(stats.requests.get("PUT 201"), Some(&1));
}

#[tokio::test]
async fn manifest_by_digest_then_by_tag() {
    let (_dir, reg) = layout();
    let img = Image::for_layout("amd64", vec![Blob::tar("hello.txt", b"hello\n")], "one");
    push_image(&reg, "app", &img, &[]).await;
    let by_digest = ManifestRef::Digest(img.raw().digest);
    assert_eq!(
        reg.head_manifest("app", &by_digest).await.unwrap(),
        Some(img.raw().descriptor())
    );
    assert_eq!(reg.list_tags("app").await.unwrap().unwrap().tags, Vec::<String>::new());
    assert_eq!(reg.head_manifest("app", &tag("v1")).await.unwrap(), None);

    reg.put_manifest("app", &tag("v1"), &img.raw()).await.unwrap();
    reg.put_manifest("app", &tag("latest"), &img.raw()).await.unwrap();
    assert_eq!(reg.list_tags("app").await.unwrap().unwrap().tags, ["latest", "v1"]);
    let got = reg.get_manifest("app", &tag("v1")).await.unwrap().unwrap();
    assert_eq!(got, img.raw());
    assert_eq!(reg.get_manifest("app", &by_digest).await.unwrap().unwrap(), img.raw());
    // A config blob is found by digest as a blob, never as a manifest.
    assert_eq!(
        reg.head_manifest("app", &ManifestRef::Digest(digest(&img.config)))
            .await
            .unwrap(),
        None
    );

    // Rewriting the same tag changes nothing on disk.
    let index_before = std::fs::read(reg.root().join("app/index.json")).unwrap();
    reg.put_manifest("app", &tag("v1"), &img.raw()).await.unwrap();
    assert_eq!(std::fs::read(reg.root().join("app/index.json")).unwrap(), index_before);
    let index: serde_json::Value = serde_json::from_slice(&index_before).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
}

#[tokio::test]
async fn index_with_children_and_a_tagless_child() {
    let (_dir, reg) = layout();
    let base = Blob::tar("etc/base", b"base\n");
    let amd = Image::for_layout("amd64", vec![base.clone()], "multi");
    let arm = Image::for_layout("arm64", vec![base], "multi");
    let idx = Index::for_layout(vec![amd.clone(), arm.clone()]);

    // The index cannot be written before its children: a registry refuses that too.
    let early = reg.put_manifest("multi", &tag("v2"), &idx.raw()).await.unwrap_err();
    assert!(early.to_string().contains(&amd.digest), "{early}");
    assert_eq!(
        reg.list_tags("multi").await.unwrap().unwrap().tags,
        Vec::<String>::new()
    );

    push_image(&reg, "multi", &amd, &[]).await;
    push_image(&reg, "multi", &arm, &[]).await;
    push_manifest(&reg, "multi", &idx.raw(), &["v2"]).await;

    let got = reg.get_manifest("multi", &tag("v2")).await.unwrap().unwrap();
    assert_eq!(got.media_type, OCI_INDEX);
    assert_eq!(got.bytes, idx.manifest);
    for child in [&amd, &arm] {
        let found = reg
            .head_manifest("multi", &ManifestRef::Digest(child.raw().digest))
            .await
            .unwrap();
        assert_eq!(found, Some(child.raw().descriptor()));
    }
    assert_eq!(reg.list_tags("multi").await.unwrap().unwrap().tags, ["v2"]);
    assert_eq!(reg.catalog().await.unwrap(), ["multi"]);
}

#[tokio::test]
async fn catalog_finds_nested_repositories_only() {
    let (_dir, reg) = layout();
    let blob = Blob::from_bytes(&b"x"[..]);
    for repo in ["a", "a/b", "a/b/c", "z/y"] {
        put(&reg, repo, &blob).await;
    }
    std::fs::create_dir_all(reg.root().join("empty/dir")).unwrap();
    assert_eq!(reg.catalog().await.unwrap(), ["a", "a/b", "a/b/c", "z/y"]);
    assert_eq!(reg.list_tags("empty").await.unwrap(), None);
}

#[tokio::test]
async fn missing_registry_reads_as_empty_and_stays_absent() {
    let (dir, reg) = layout();
    let digest = Digest::of(b"nothing");
    assert_eq!(reg.list_tags("x/y").await.unwrap(), None);
    assert_eq!(reg.catalog().await.unwrap(), Vec::<String>::new());
    assert_eq!(reg.head_manifest("x/y", &tag("v1")).await.unwrap(), None);
    assert_eq!(
        reg.get_manifest("x/y", &ManifestRef::Digest(digest)).await.unwrap(),
        None
    );
    assert_eq!(reg.blob_size("x/y", &digest).await.unwrap(), None);
    let err = reg.get_blob("x/y", &digest).await.expect_err("no blob");
    assert!(
        matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{err}"
    );
    assert!(
        err.to_string().contains(&format!("oci:{}", reg.root().display())),
        "{err}"
    );
    assert_eq!(
        reg.mount_blob("x/y", &digest, "other").await.unwrap(),
        MountOutcome::NotMounted
    );
    assert!(!dir.path().join("reg").exists(), "reads must not create the layout");
}

#[tokio::test]
async fn put_blob_rejects_wrong_digest_or_size_and_leaves_nothing() {
    let (_dir, reg) = layout();
    let blob = Blob::from_bytes(&b"the real content"[..]);
    let wrong = Digest::of(b"something else");
    let err = reg
        .put_blob("app", &wrong, blob.size, chunked(&blob.bytes(), 2))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::DigestMismatch { expected, actual, .. } if expected == wrong && actual == digest(&blob))
    );
    for size in [blob.size - 1, blob.size + 1] {
        let err = reg
            .put_blob("app", &digest(&blob), size, chunked(&blob.bytes(), 2))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("put blob app@"), "{err}");
    }
    // A source failing mid-stream fails the upload with the source's error.
    let failing: kpromo::registry::BlobStream = kpromo::registry::BlobStream::new(futures_util::stream::iter(vec![
        Ok(blob.bytes().slice(..4)),
        Err(Error::Transport {
            registry: "src".into(),
            operation: "get blob".into(),
            message: "connection reset".into(),
        }),
    ]));
    let err = reg
        .put_blob("app", &digest(&blob), blob.size, failing)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("connection reset"), "{err}");
    assert_eq!(reg.blob_size("app", &wrong).await.unwrap(), None);
    assert_eq!(reg.blob_size("app", &digest(&blob)).await.unwrap(), None);
    assert_eq!(files(&reg.root().join("app")), ["index.json", "oci-layout"]);
}

#[tokio::test]
async fn put_manifest_rejects_mismatches_and_leaves_nothing() {
    let (_dir, reg) = layout();
    let img = Image::for_layout("amd64", vec![Blob::tar("f", b"f")], "m");
    push_image(&reg, "app", &img, &[]).await;
    let before = files(&reg.root().join("app"));
    let index_before = std::fs::read(reg.root().join("app/index.json")).unwrap();

    // Bytes that do not hash to the digest the caller claims.
    let mut forged = img.raw();
    forged.bytes = Bytes::from(format!("{} ", String::from_utf8_lossy(&img.manifest)));
    let err = reg.put_manifest("app", &tag("v1"), &forged).await.unwrap_err();
    assert!(
        matches!(err, Error::DigestMismatch { expected, .. } if expected == img.raw().digest),
        "{err}"
    );
    // A digest reference that is not the manifest's digest.
    let other = Digest::of(b"other");
    let err = reg
        .put_manifest("app", &ManifestRef::Digest(other), &img.raw())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::DigestMismatch { expected, .. } if expected == other),
        "{err}"
    );
    // A manifest whose layer was never uploaded.
    let orphan = Image::for_layout("amd64", vec![Blob::tar("missing", b"never uploaded")], "m");
    let err = reg.put_manifest("app", &tag("v1"), &orphan.raw()).await.unwrap_err();
    assert!(err.to_string().contains("not in the repository"), "{err}");
    // Not a manifest at all.
    let junk = RawManifest::new(OCI_MANIFEST, Bytes::from_static(b"not json"));
    assert!(reg.put_manifest("app", &tag("v1"), &junk).await.is_err());

    assert_eq!(files(&reg.root().join("app")), before);
    assert_eq!(std::fs::read(reg.root().join("app/index.json")).unwrap(), index_before);
}

#[tokio::test]
async fn corruption_on_disk_is_detected_on_read() {
    let (_dir, reg) = layout();
    let img = Image::for_layout("amd64", vec![Blob::tar("f", b"content")], "c");
    push_image(&reg, "app", &img, &["v1"]).await;
    let blobs = reg.root().join("app/blobs/sha256");
    let layer = &img.layers[0];
    let mut bytes = layer.to_vec();
    bytes[600] ^= 1;
    std::fs::write(blobs.join(digest(layer).hex()), &bytes).unwrap();
    let mut stream = reg.get_blob("app", &digest(layer)).await.unwrap();
    let mut delivered = 0;
    let err = loop {
        match stream.next().await {
            Some(Ok(chunk)) => delivered += chunk.len(),
            Some(Err(e)) => break e,
            None => panic!("a corrupt blob ended cleanly"),
        }
    };
    assert!(
        matches!(err, Error::DigestMismatch { expected, .. } if expected == digest(layer)),
        "{err}"
    );
    // The verdict replaces the last chunk: an upload that stops reading at the blob's
    // length (as HTTP clients do) never has the whole corrupt blob to send.
    assert!(
        delivered < bytes.len(),
        "{delivered} of {} bytes delivered",
        bytes.len()
    );
    assert_eq!(stream.vouched_digest(), Some(digest(layer)));

    let mut manifest = img.manifest.to_vec();
    manifest[0] = b' ';
    std::fs::write(blobs.join(img.raw().digest.hex()), &manifest).unwrap();
    let err = reg.get_manifest("app", &tag("v1")).await.unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
}

#[tokio::test]
async fn mount_links_within_the_layout_root() {
    let (_dir, reg) = layout();
    let blob = Blob::from_bytes(&b"shared base layer"[..]);
    put(&reg, "staging/app", &blob).await;
    let outcome = reg.mount_blob("prod/app", &digest(&blob), "staging/app").await.unwrap();
    assert_eq!(outcome, MountOutcome::Mounted);
    assert_eq!(
        read_all(reg.get_blob("prod/app", &digest(&blob)).await.unwrap())
            .await
            .unwrap(),
        blob.bytes()
    );
    // Mounting again is still a success, and a blob the source lacks is not mounted.
    assert_eq!(
        reg.mount_blob("prod/app", &digest(&blob), "staging/app").await.unwrap(),
        MountOutcome::Mounted
    );
    let absent = Digest::of(b"absent");
    assert_eq!(
        reg.mount_blob("prod/app", &absent, "staging/app").await.unwrap(),
        MountOutcome::NotMounted
    );
    assert_eq!(reg.stats().requests.get("POST 201"), Some(&2));
}

#[tokio::test]
async fn tags_move_and_the_old_manifest_stays_findable() {
    let (_dir, reg) = layout();
    let one = Image::for_layout("amd64", vec![Blob::tar("f", b"1")], "one");
    let two = Image::for_layout("amd64", vec![Blob::tar("f", b"2")], "two");
    push_image(&reg, "app", &one, &["latest"]).await;
    push_image(&reg, "app", &two, &["latest"]).await;
    assert_eq!(
        reg.head_manifest("app", &tag("latest")).await.unwrap(),
        Some(two.raw().descriptor())
    );
    let old = reg
        .head_manifest("app", &ManifestRef::Digest(one.raw().digest))
        .await
        .unwrap();
    assert_eq!(old, Some(one.raw().descriptor()));
}

#[tokio::test]
async fn repository_names_cannot_escape_the_root() {
    let (dir, reg) = layout();
    let blob = Blob::from_bytes(&b"x"[..]);
    for repo in ["../escape", "a/../../b", "/abs", "Upper", "a//b", "a/blobs", ""] {
        let err = reg
            .put_blob(repo, &digest(&blob), 1, chunked(&blob.bytes(), 1))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("invalid repository name"), "{repo}: {err}");
        assert!(reg.list_tags(repo).await.is_err(), "{repo}");
    }
    assert_eq!(files(dir.path()), Vec::<String>::new());
}

#[tokio::test]
async fn open_refuses_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"").unwrap();
    let err = oci_layout::open(&file).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
    assert!(oci_layout::open(std::path::Path::new("")).is_err());
}

#[tokio::test]
async fn a_cancelled_upload_leaves_nothing() {
    let (_dir, reg) = layout();
    let blob = Blob::from_bytes(vec![7u8; 10_000]);
    // A source that sends a first chunk and then stalls, like a dead connection.
    let stalled: kpromo::registry::BlobStream = kpromo::registry::BlobStream::new(
        futures_util::stream::iter(vec![Ok(blob.bytes().slice(..5_000))]).chain(futures_util::stream::pending()),
    );
    let blob_digest = digest(&blob);
    let upload = reg.put_blob("app", &blob_digest, 10_000, stalled);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(200), upload)
            .await
            .is_err()
    );
    assert_eq!(files(&reg.root().join("app")), ["index.json", "oci-layout"]);
}

#[tokio::test]
async fn docker_media_types_are_stored_and_served_unchanged() {
    let (_dir, reg) = layout();
    let config = Blob::from_bytes(&br#"{"architecture":"amd64","os":"linux"}"#[..]);
    let layer = Blob::tar("f", b"docker");
    put(&reg, "app", &config).await;
    put(&reg, "app", &layer).await;
    let child = RawManifest::new(
        DOCKER_MANIFEST,
        Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","size":{},"digest":"{}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar","size":{},"digest":"{}"}}]}}"#,
            config.size, config.digest, layer.size, layer.digest
        )),
    );
    let list = RawManifest::new(
        DOCKER_LIST,
        Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[{{"mediaType":"{DOCKER_MANIFEST}","size":{},"digest":"{}","platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
            child.bytes.len(),
            child.digest
        )),
    );
    push_manifest(&reg, "app", &child, &[]).await;
    push_manifest(&reg, "app", &list, &["v1"]).await;
    assert_eq!(reg.get_manifest("app", &tag("v1")).await.unwrap(), Some(list.clone()));
    let got = reg
        .get_manifest("app", &ManifestRef::Digest(child.digest))
        .await
        .unwrap();
    assert_eq!(got, Some(child));
}

#[tokio::test]
async fn deleting_a_manifest_drops_it_and_its_tags_and_keeps_every_blob() {
    let (_dir, reg) = layout();
    let gone = Image::for_layout("amd64", vec![Blob::tar("a.txt", b"a\n")], "gone");
    let kept = Image::for_layout("amd64", vec![Blob::tar("b.txt", b"b\n")], "kept");
    push_image(&reg, "app", &gone, &["v1", "latest"]).await;
    push_image(&reg, "app", &kept, &["v0"]).await;
    let digest_of_gone = gone.raw().digest;
    assert!(reg.delete_manifest("app", &digest_of_gone).await.unwrap());
    assert!(
        !reg.delete_manifest("app", &digest_of_gone).await.unwrap(),
        "already gone"
    );
    assert!(
        !reg.delete_manifest("absent", &digest_of_gone).await.unwrap(),
        "no repository"
    );
    assert_eq!(reg.list_tags("app").await.unwrap().unwrap().tags, ["v0"]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reg.root().join("app/index.json")).unwrap()).unwrap();
    let listed = index["manifests"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .all(|e| e["digest"] != digest_of_gone.to_string().as_str()),
        "{index}"
    );
    assert_eq!(reg.get_manifest("app", &tag("v0")).await.unwrap(), Some(kept.raw()));
    // Blobs stay: the manifest's own bytes (a digest lookup still finds them, as it finds
    // an index's unlisted children) and its layers.
    let blob = |d: Digest| reg.root().join("app/blobs/sha256").join(d.hex());
    assert!(blob(digest_of_gone).is_file());
    assert!(blob(digest(&gone.layers[0])).is_file());
    assert_eq!(reg.stats().requests.get("DELETE 202"), Some(&1));
}
