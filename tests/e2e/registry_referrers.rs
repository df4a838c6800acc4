//! Referrers (OCI 1.1) through the `Registry` trait, on real servers: distribution 2.8
//! (no referrers API, so the tag-schema fallback, an OCI index tagged `sha256-<hex>`,
//! checked with skopeo), an OCI layout (the same fallback), and go-containerregistry's
//! registry (the referrers API). The exact HTTP exchanges of the native path are in the
//! mocked binary's `referrers` module.
use std::process::Command;

use bytes::Bytes;
use futures_util::future::join_all;
use kpromo::digest::Digest;
use kpromo::registry::{ClientOptions, ManifestRef, RawManifest, Registry, media};
use serde_json::{Value, json};

use crate::support;
use crate::support::client::{digest, open, stream_of};
use crate::support::ggcr::GgcrRegistry;
use crate::support::images::{Blob, Format, Image};
use crate::support::{FaultProxy, Pusher, RegistryOptions, TestRegistry, within};

/// The empty config every referrer here points at (OCI 1.1's `application/vnd.oci.empty.v1+json`).
const EMPTY: &[u8] = b"{}";
const SBOM: &str = "application/spdx+json";

/// Where a referrer says what it is.
#[derive(Clone, Copy)]
enum Typed {
    /// OCI 1.1: `artifactType`, with the empty config.
    ArtifactType,
    /// The config's media type (also OCI 1.1, when `artifactType` is unset): the only way
    /// go-containerregistry's registry reports a type (it ignores `artifactType`).
    Config,
}

/// An OCI 1.1 referrer of `subject`: an image manifest with a `{}` config, no layers,
/// its type, and an annotation naming it.
fn referrer(subject: &RawManifest, artifact_type: &str, typed: Typed) -> RawManifest {
    let config_type = match typed {
        Typed::ArtifactType => "application/vnd.oci.empty.v1+json",
        Typed::Config => artifact_type,
    };
    let mut body = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": config_type, "digest": Digest::of(EMPTY).to_string(), "size": EMPTY.len()},
        "layers": [],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest.to_string(), "size": subject.bytes.len()},
        "annotations": {"org.example.kind": artifact_type},
    });
    if let Typed::ArtifactType = typed {
        body["artifactType"] = json!(artifact_type);
    }
    RawManifest::new(media::OCI_MANIFEST, Bytes::from(body.to_string()))
}

/// A signature, an SBOM and an attestation of `subject`.
fn three_referrers(subject: &RawManifest, typed: Typed) -> Vec<RawManifest> {
    [
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        SBOM,
        "application/vnd.in-toto+json",
    ]
    .iter()
    .map(|t| referrer(subject, t, typed))
    .collect()
}

fn sorted(digests: impl IntoIterator<Item = Digest>) -> Vec<Digest> {
    let mut digests: Vec<Digest> = digests.into_iter().collect();
    digests.sort();
    digests
}

/// Puts every referrer from two tasks at once, then lists them: each exactly once, and
/// the artifact type filter keeps only the SBOM (`referrers[1]`).
async fn put_concurrently_and_list(registry: &dyn Registry, repo: &str, subject: &Digest, referrers: &[RawManifest]) {
    let puts = referrers
        .iter()
        .flat_map(|r| [registry.put_referrer(repo, r), registry.put_referrer(repo, r)]);
    for outcome in join_all(puts).await {
        outcome.expect("put referrer");
    }
    let listed = registry
        .list_referrers(repo, subject, None)
        .await
        .expect("list referrers");
    assert_eq!(
        sorted(listed.iter().map(|r| r.digest)),
        sorted(referrers.iter().map(|r| r.digest)),
        "every referrer listed exactly once: {listed:?}"
    );
    let sboms = registry
        .list_referrers(repo, subject, Some(SBOM))
        .await
        .expect("list SBOMs");
    assert_eq!(sboms.len(), 1, "{sboms:?}");
    assert_eq!(sboms[0].digest, referrers[1].digest);
}

/// Pushes image `n` tagged `v1` into `app`, with the `{}` blob referrers point at; returns
/// the image manifest, the subject of the referrers.
async fn push_subject(pusher: &Pusher, n: u64) -> RawManifest {
    let image = Image::simple(Format::Oci, n);
    within(60, "push fixtures", async {
        pusher.push_image("app", &image, &["v1"]).await;
        pusher.push_blob("app", &Blob::from_bytes(EMPTY)).await;
    })
    .await;
    RawManifest::new(image.media_type(), image.manifest.clone())
}

/// Puts `referrers` again through `proxy`: idempotent, not a single write.
async fn assert_second_put_writes_nothing(client: &dyn Registry, proxy: &FaultProxy, referrers: &[RawManifest]) {
    proxy.clear_seen();
    within(60, "put the referrers again", async {
        for r in referrers {
            client.put_referrer("app", r).await.expect("second put");
        }
    })
    .await;
    let writes: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method != "GET" && s.method != "HEAD")
        .collect();
    assert!(writes.is_empty(), "a second put writes nothing: {writes:?}");
}

/// The digests an index lists, as skopeo read it.
fn listed_in(index: &[u8]) -> Vec<Digest> {
    let index: Value = serde_json::from_slice(index).expect("fallback index is JSON");
    assert_eq!(index["mediaType"], media::OCI_INDEX);
    sorted(
        index["manifests"]
            .as_array()
            .expect("manifests list")
            .iter()
            .map(|m| digest(m["digest"].as_str().expect("digest"))),
    )
}

#[tokio::test]
async fn distribution_keeps_referrers_in_the_fallback_index() {
    let registry = TestRegistry::start(RegistryOptions::plain());
    let proxy = FaultProxy::start(registry.port());
    let subject = push_subject(&registry.pusher(), 1).await;
    let referrers = three_referrers(&subject, Typed::ArtifactType);
    let (_registries, root) = open(&proxy.host(), support::client::options_for(&registry));
    let client = root.registry.as_ref();
    within(
        120,
        "put and list referrers",
        put_concurrently_and_list(client, "app", &subject.digest, &referrers),
    )
    .await;
    let listed = client
        .list_referrers("app", &subject.digest, Some(SBOM))
        .await
        .expect("list");
    assert_eq!(
        listed[0].annotations.get("org.example.kind").map(String::as_str),
        Some(SBOM),
        "the fallback index keeps each referrer's annotations"
    );

    assert_second_put_writes_nothing(client, &proxy, &referrers).await;

    let fallback = format!("app:sha256-{}", subject.digest.hex());
    let index = registry.skopeo_raw(&fallback).expect("skopeo reads the fallback tag");
    assert_eq!(listed_in(&index), sorted(referrers.iter().map(|r| r.digest)));
}

#[tokio::test]
async fn an_oci_layout_keeps_referrers_in_the_same_fallback_index() {
    let dir = tempfile::tempdir().unwrap();
    let (_registries, root) = open(&format!("oci:{}", dir.path().display()), ClientOptions::default());
    let layout = root.registry.as_ref();
    let image = Image::simple(Format::Oci, 2);
    for blob in image.blobs().chain([&Blob::from_bytes(EMPTY)]) {
        layout
            .put_blob("app", &digest(&blob.digest), blob.size, stream_of(blob.bytes()))
            .await
            .expect("put blob");
    }
    let subject = RawManifest::new(image.media_type(), image.manifest.clone());
    layout
        .put_manifest("app", &ManifestRef::Tag("v1".into()), &subject)
        .await
        .expect("put subject");
    let referrers = three_referrers(&subject, Typed::ArtifactType);
    put_concurrently_and_list(layout, "app", &subject.digest, &referrers).await;

    let writes = |registry: &dyn Registry| -> u64 {
        let stats = registry.stats();
        stats
            .requests
            .iter()
            .filter(|(request, _)| request.starts_with("PUT") || request.starts_with("POST"))
            .map(|(_, n)| n)
            .sum()
    };
    let before = writes(layout);
    for r in &referrers {
        layout.put_referrer("app", r).await.expect("second put");
    }
    assert_eq!(writes(layout), before, "a second put writes nothing");

    support::require_tool("skopeo");
    let fallback = format!("oci:{}/app:sha256-{}", dir.path().display(), subject.digest.hex());
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", &fallback])
        .output()
        .expect("run skopeo");
    assert!(out.status.success(), "skopeo: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(listed_in(&out.stdout), sorted(referrers.iter().map(|r| r.digest)));
}

#[tokio::test]
async fn a_registry_with_the_referrers_api_is_asked_through_it() {
    let registry = GgcrRegistry::start();
    let proxy = FaultProxy::start(registry.port());
    let pusher = registry.pusher();
    let subject = push_subject(&pusher, 4).await;
    let referrers = three_referrers(&subject, Typed::Config);
    let options = ClientOptions {
        docker_config: Some(std::env::temp_dir().join("kpromo-no-docker-config")),
        ..ClientOptions::default()
    };
    let (_registries, root) = open(&proxy.host(), options);
    let client = root.registry.as_ref();
    within(
        120,
        "put and list referrers",
        put_concurrently_and_list(client, "app", &subject.digest, &referrers),
    )
    .await;

    // Listing goes through the API, never through the fallback tag.
    proxy.clear_seen();
    let listed = client.list_referrers("app", &subject.digest, None).await.expect("list");
    assert_eq!(listed.len(), referrers.len());
    let api = format!("/v2/app/referrers/{}", subject.digest);
    let asked: Vec<(String, Option<u16>)> = proxy.seen().into_iter().map(|s| (s.path, s.status)).collect();
    assert_eq!(asked, [(api, Some(200))], "one API request, nothing else");

    // This registry never acknowledges `subject` (no OCI-Subject header), so the spec has
    // the client keep the fallback index too: clients without the API still find them.
    let (status, _, index) = pusher
        .get_manifest("app", &format!("sha256-{}", subject.digest.hex()))
        .await;
    assert_eq!(status, 200, "fallback index written");
    assert_eq!(listed_in(&index), sorted(referrers.iter().map(|r| r.digest)));

    assert_second_put_writes_nothing(client, &proxy, &referrers).await;
}
