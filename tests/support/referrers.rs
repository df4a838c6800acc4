//! OCI 1.1 referrers with the harness's own client (never kpromo's): attaching one the way
//! cosign v3 or an SBOM tool does, and listing them the way a verifier does, through the
//! referrers API or, on a registry without it (distribution 2.8), the tag-schema fallback
//! index `sha256-<hex>` that such tools maintain.
use bytes::Bytes;
use serde_json::{Value, json};

use super::Pusher;
use super::images::{Blob, OCI_INDEX, OCI_MANIFEST};

pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
pub const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
pub const SPDX: &str = "application/spdx+json";
pub const PROMOTION: &str = "https://k8s.io/promo-tools/promotion/v1";
pub const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
pub const PREDICATE_TYPE: &str = "dev.sigstore.bundle.predicateType";

/// The image a referrer names: media type, digest, manifest size.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub media_type: &'a str,
    pub digest: &'a str,
    pub size: u64,
}

/// A referrer manifest and the blobs it needs.
#[derive(Debug, Clone)]
pub struct Referrer {
    pub manifest: Bytes,
    pub digest: String,
    pub artifact_type: String,
    pub annotations: Value,
    pub blobs: Vec<Blob>,
}

impl Referrer {
    /// An OCI 1.1 referrer of `subject`: `artifactType`, the empty config, one layer holding
    /// `content` (of media type `artifact_type`), `annotations`.
    pub fn new(subject: Subject, artifact_type: &str, content: impl Into<Bytes>, annotations: Value) -> Referrer {
        let config = Blob::from_bytes(Bytes::from_static(b"{}"));
        let layer = Blob::from_bytes(content.into());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": EMPTY_CONFIG, "digest": config.digest, "size": config.size},
            "layers": [{"mediaType": artifact_type, "digest": layer.digest, "size": layer.size}],
            "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size},
            "annotations": annotations,
        });
        let manifest = Bytes::from(manifest.to_string());
        Referrer {
            digest: super::images::sha256_digest(&manifest),
            manifest,
            artifact_type: artifact_type.to_string(),
            annotations,
            blobs: vec![config, layer],
        }
    }

    /// A sigstore bundle referrer, as cosign v3 attaches one.
    pub fn bundle(subject: Subject, bundle: impl Into<Bytes>, predicate_type: &str) -> Referrer {
        let annotations = json!({
            "dev.sigstore.bundle.content": "dsse-envelope",
            PREDICATE_TYPE: predicate_type,
            "org.opencontainers.image.created": "2026-01-01T00:00:00Z",
        });
        Referrer::new(subject, BUNDLE_V03, bundle, annotations)
    }

    /// Pushes it into `repo`: its blobs, the manifest by digest, and with `fallback` (a
    /// registry without the referrers API) its entry in the subject's fallback index.
    pub async fn attach(&self, pusher: &Pusher, repo: &str, subject: &str, fallback: bool) {
        for blob in &self.blobs {
            pusher.push_blob(repo, blob).await;
        }
        pusher
            .put_manifest(repo, &self.digest, OCI_MANIFEST, &self.manifest)
            .await;
        if !fallback {
            return;
        }
        let tag = fallback_tag(subject);
        let (status, _, body) = pusher.get_manifest(repo, &tag).await;
        let mut index = if status == 200 {
            serde_json::from_slice(&body).expect("fallback index JSON")
        } else {
            json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
        };
        index["manifests"].as_array_mut().expect("manifests").push(json!({
            "mediaType": OCI_MANIFEST,
            "digest": self.digest,
            "size": self.manifest.len(),
            "artifactType": self.artifact_type,
            "annotations": self.annotations,
        }));
        pusher
            .put_manifest(repo, &tag, OCI_INDEX, &Bytes::from(index.to_string()))
            .await;
    }
}

/// The fallback tag of `digest` (`sha256:<hex>`): `sha256-<hex>`.
pub fn fallback_tag(digest: &str) -> String {
    digest.replace(':', "-")
}

/// The referrers of `digest` in `repo`, as a verifier finds them: the referrers API's
/// index when the registry has one, else the fallback index (empty when neither exists).
/// Each entry as listed.
pub async fn list(pusher: &Pusher, repo: &str, digest: &str) -> Vec<Value> {
    let (status, body) = pusher.get_referrers(repo, digest).await;
    let index: Value = if status == 200 {
        serde_json::from_slice(&body).expect("referrers index JSON")
    } else {
        let (status, _, body) = pusher.get_manifest(repo, &fallback_tag(digest)).await;
        if status != 200 {
            return Vec::new();
        }
        serde_json::from_slice(&body).expect("fallback index JSON")
    };
    index["manifests"].as_array().cloned().unwrap_or_default()
}

/// The referrers of `digest` in `repo` whose manifest declares `predicate_type`, each as
/// (manifest bytes, bundle bytes): manifests are read whole, since some registries list
/// no annotations.
pub async fn bundles(pusher: &Pusher, repo: &str, digest: &str, predicate_type: &str) -> Vec<(Bytes, Bytes)> {
    let mut out = Vec::new();
    for entry in list(pusher, repo, digest).await {
        let referrer = entry["digest"].as_str().expect("referrer digest");
        let (status, _, manifest) = pusher.get_manifest(repo, referrer).await;
        assert_eq!(status, 200, "{repo}@{referrer} is listed but missing");
        let parsed: Value = serde_json::from_slice(&manifest).expect("referrer JSON");
        if parsed["annotations"][PREDICATE_TYPE] != predicate_type {
            continue;
        }
        assert_eq!(parsed["artifactType"], BUNDLE_V03, "{parsed}");
        let layer = parsed["layers"][0]["digest"].as_str().expect("bundle layer");
        let bundle = pusher.get_blob(repo, layer).await.expect("bundle blob");
        out.push((manifest, bundle));
    }
    out
}
